/*
 * listener: one LISTEN connection driven by a libuv loop, reporting ready / wake / lost to its
 * owner (after pgqd's pgsocket.c).
 *
 * How libpq and libuv are made to agree, and why:
 *   - The connection is made with PQconnectStartParams and driven by PQconnectPoll, and it is put
 *     in non-blocking mode (PQsetnonblocking) before the LISTEN is sent, so that neither
 *     connecting nor sending can block the loop that also answers signals and the watchdog.
 *   - The socket is watched by one uv_poll_t. libpq may replace its socket while connecting (it
 *     tries the next host or address, or retries without SSL or GSS), so every time we are about
 *     to wait, the poll handle is restarted when PQsocket no longer matches the fd it watches.
 *   - The poll handle is stopped and closed before PQfinish closes the socket: libuv must never
 *     poll a closed fd, whose number the kernel may already have given to another connection.
 *   - There is never more than one poll handle on the fd: the old handle is closed before a new
 *     one is created, because libuv does not support two poll handles on one descriptor.
 *   - The poll handle lives on the heap and is freed only in its close callback, since libuv keeps
 *     using a closing handle until that callback has run.
 */
#include "listener.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"

enum listener_state {
	LISTENER_OFF,
	LISTENER_CONNECTING,
	LISTENER_SUBSCRIBING, /* LISTEN sent, waiting for its result */
	LISTENER_LISTENING,
};

struct listener {
	uv_loop_t *loop;
	char *dsn;                    /* as configured; resolved by db_resolve_dsn at each start */
	const char *application_name;
	char *listen_sql;             /* "LISTEN <channel>" */
	listener_callback *callback;
	void *owner;

	enum listener_state state;
	PGconn *conn;
	uv_poll_t *poll; /* heap: a closed handle is freed in its close callback */
	int poll_fd;     /* the descriptor poll watches, -1 when none */
};

struct listener *listener_create(uv_loop_t *loop, const char *dsn, const char *application_name, const char *channel,
				 listener_callback *callback, void *owner)
{
	struct listener *listener = calloc(1, sizeof(*listener));
	size_t sql_size = strlen("LISTEN ") + strlen(channel) + 1;

	if (!listener)
		return NULL;
	listener->dsn = strdup(dsn ? dsn : "");
	listener->listen_sql = malloc(sql_size);
	if (!listener->dsn || !listener->listen_sql) {
		free(listener->dsn);
		free(listener->listen_sql);
		free(listener);
		return NULL;
	}
	snprintf(listener->listen_sql, sql_size, "LISTEN %s", channel);
	listener->loop = loop;
	listener->application_name = application_name;
	listener->callback = callback;
	listener->owner = owner;
	listener->state = LISTENER_OFF;
	listener->poll_fd = -1;
	return listener;
}

static void free_handle(uv_handle_t *handle)
{
	free(handle);
}

static void stop_poll(struct listener *listener)
{
	if (listener->poll) {
		uv_poll_stop(listener->poll);
		uv_close((uv_handle_t *)listener->poll, free_handle);
		listener->poll = NULL;
	}
	listener->poll_fd = -1;
}

void listener_stop(struct listener *listener)
{
	/* Stop polling before PQfinish closes the socket: libuv must never poll a closed fd. */
	stop_poll(listener);
	PQfinish(listener->conn);
	listener->conn = NULL;
	listener->state = LISTENER_OFF;
}

void listener_destroy(struct listener *listener)
{
	if (!listener)
		return;
	listener_stop(listener);
	free(listener->dsn);
	free(listener->listen_sql);
	free(listener);
}

/* Close the connection and tell the owner why: what failed, and libpq's reason. */
static void fail(struct listener *listener, const char *what)
{
	char reason[512];

	db_error_text(listener->conn, NULL, reason, sizeof(reason));
	db_redact_error(listener->dsn, reason, sizeof(reason));
	listener_stop(listener);
	listener->callback(listener->owner, LISTENER_LOST, what, reason);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Poll the socket for the given events, re-creating the handle when libpq's socket changed. */
static int watch(struct listener *listener, int events)
{
	int fd = PQsocket(listener->conn);

	if (fd < 0)
		return -1;
	if (listener->poll && fd != listener->poll_fd)
		stop_poll(listener);
	if (!listener->poll) {
		listener->poll = malloc(sizeof(*listener->poll));
		if (!listener->poll || uv_poll_init(listener->loop, listener->poll, fd) != 0) {
			free(listener->poll);
			listener->poll = NULL;
			return -1;
		}
		listener->poll->data = listener;
		listener->poll_fd = fd;
	}
	return uv_poll_start(listener->poll, events, on_poll) == 0 ? 0 : -1;
}

/* One step of connecting; once connected, send the LISTEN and wait for its result. */
static void drive_connect(struct listener *listener)
{
	switch (PQconnectPoll(listener->conn)) {
	case PGRES_POLLING_READING:
		if (watch(listener, UV_READABLE) < 0)
			fail(listener, "cannot poll the socket");
		return;
	case PGRES_POLLING_WRITING:
		if (watch(listener, UV_WRITABLE) < 0)
			fail(listener, "cannot poll the socket");
		return;
	case PGRES_POLLING_FAILED:
		fail(listener, "connection failed");
		return;
	case PGRES_POLLING_OK:
		break;
	default:
		return;
	}
	if (PQsetnonblocking(listener->conn, 1) != 0 || !PQsendQuery(listener->conn, listener->listen_sql)) {
		fail(listener, "LISTEN failed");
		return;
	}
	listener->state = LISTENER_SUBSCRIBING;
	if (PQflush(listener->conn) < 0 || watch(listener, UV_READABLE) < 0)
		fail(listener, "LISTEN failed");
}

/*
 * Read what arrived: the LISTEN's result while subscribing, then any notifications. The event is
 * sent last, once the connection is no longer touched, so that the owner may stop or restart the
 * listener from its callback. Subscribing implies a wake, so a read that completes the LISTEN
 * reports only LISTENER_READY.
 */
static void read_input(struct listener *listener)
{
	PGnotify *notify;
	bool ready = false, wake = false;

	if (!PQconsumeInput(listener->conn)) {
		fail(listener, "connection lost");
		return;
	}
	if (listener->state == LISTENER_SUBSCRIBING) {
		while (!PQisBusy(listener->conn)) {
			PGresult *res = PQgetResult(listener->conn);
			if (!res) {
				listener->state = LISTENER_LISTENING;
				ready = true;
				break;
			}
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				PQclear(res);
				fail(listener, "LISTEN failed");
				return;
			}
			PQclear(res);
		}
	}
	while ((notify = PQnotifies(listener->conn)) != NULL) {
		wake = true;
		PQfreemem(notify);
	}
	if (PQstatus(listener->conn) != CONNECTION_OK) {
		fail(listener, "connection lost");
		return;
	}
	if (ready)
		listener->callback(listener->owner, LISTENER_READY, NULL, NULL);
	else if (wake)
		listener->callback(listener->owner, LISTENER_WAKE, NULL, NULL);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
	struct listener *listener = handle->data;

	if (status < 0) {
		fail(listener, uv_strerror(status));
		return;
	}
	if (listener->state == LISTENER_CONNECTING)
		drive_connect(listener);
	else if (events & UV_READABLE)
		read_input(listener);
}

void listener_start(struct listener *listener)
{
	/*
	 * Keepalives find a silently dropped connection, which a listener that only reads never would.
	 * Like every default of a connection (db_connection_params), the user's own values win.
	 */
	const char *keys[DB_CONNECTION_PARAMS_MAX], *values[DB_CONNECTION_PARAMS_MAX];

	if (listener->state != LISTENER_OFF)
		return;
	db_connection_params(listener->dsn, listener->application_name, db_liveness_keys, db_liveness_values, keys,
			     values);
	listener->conn = PQconnectStartParams(keys, values, 1);
	if (!listener->conn || PQstatus(listener->conn) == CONNECTION_BAD) {
		fail(listener, "cannot start a connection");
		return;
	}
	listener->state = LISTENER_CONNECTING;
	drive_connect(listener);
}
