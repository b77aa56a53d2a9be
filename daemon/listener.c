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
 *
 * The wake-up gate (sql/030_wakeup_gate.sql) is one more query at a time on the same connection:
 * pg_advisory_lock to arm, pg_advisory_unlock to disarm. `want_armed` is what the owner (arm) and
 * the notifications (disarm) asked for, `gate` what the server did; after every read the listener
 * sends whichever query brings the two together. The session's lock_timeout bounds the wait of an
 * arming query: a lock request that waited for long would hold a snapshot, and with it vacuum's
 * horizon, for as long. The session also sets TCP keepalives on the server side, so that a
 * daemon whose machine vanished loses its lock (and its armed state) within about a minute.
 */
#include "listener.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "claim.h"
#include "db.h"

enum listener_state {
	LISTENER_OFF,
	LISTENER_CONNECTING,
	LISTENER_SUBSCRIBING, /* LISTEN sent, waiting for its result */
	LISTENER_LISTENING,
};

/* The wake-up gate, as the server has it; ARMING and DISARMING have their query in flight. */
enum gate_state {
	GATE_OPEN,
	GATE_ARMING,
	GATE_ARMED,
	GATE_DISARMING,
};

/*
 * The settings of the session, then the LISTEN, in one simple-query string. A gate query waits
 * at most lock_timeout; the keepalives (ignored on a Unix socket) make the server notice a client
 * that vanished without closing its connection.
 */
#define SESSION_SETUP_SQL                                                                          \
	"SET lock_timeout = '100ms'; SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10;" \
	" SET tcp_keepalives_count = 3; LISTEN "
#define GATE_ARM_SQL "SELECT pg_catalog.pg_advisory_lock(" LOCK_CLASS_WAKE ", 0)"
#define GATE_DISARM_SQL "SELECT pg_catalog.pg_advisory_unlock(" LOCK_CLASS_WAKE ", 0)"
#define SQLSTATE_LOCK_NOT_AVAILABLE "55P03"

struct listener {
	uv_loop_t *loop;
	char *dsn;                    /* as configured; resolved by db_resolve_dsn at each start */
	const char *application_name;
	char *listen_sql;             /* SESSION_SETUP_SQL "<channel>" */
	listener_callback *callback;
	void *owner;

	enum listener_state state;
	PGconn *conn;
	uv_poll_t *poll; /* heap: a closed handle is freed in its close callback */
	int poll_fd;     /* the descriptor poll watches, -1 when none */

	enum gate_state gate;
	bool want_armed;
	bool arm_refused; /* the arming query in flight failed on lock_timeout */
};

struct listener *listener_create(uv_loop_t *loop, const char *dsn, const char *application_name, const char *channel,
				 listener_callback *callback, void *owner)
{
	struct listener *listener = calloc(1, sizeof(*listener));
	size_t sql_size = strlen(SESSION_SETUP_SQL) + strlen(channel) + 1;

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
	snprintf(listener->listen_sql, sql_size, "%s%s", SESSION_SETUP_SQL, channel);
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
	/* The server releases the gate with the session. */
	listener->gate = GATE_OPEN;
	listener->want_armed = false;
	listener->arm_refused = false;
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

/* Send what libpq has buffered; poll for writability too while some of it is left. */
static int flush_and_watch(struct listener *listener)
{
	int pending = PQflush(listener->conn);

	if (pending < 0)
		return -1;
	return watch(listener, pending ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/*
 * Send the gate query that brings the server's state to what is wanted, unless one is in flight
 * already. Returns 0, or -1 when it could not be sent.
 */
static int gate_reconcile(struct listener *listener)
{
	const char *sql = NULL;
	enum gate_state next = listener->gate;

	if (listener->state != LISTENER_LISTENING)
		return 0;
	if (listener->want_armed && listener->gate == GATE_OPEN) {
		sql = GATE_ARM_SQL;
		next = GATE_ARMING;
	} else if (!listener->want_armed && listener->gate == GATE_ARMED) {
		sql = GATE_DISARM_SQL;
		next = GATE_DISARMING;
	}
	if (!sql)
		return 0;
	if (!PQsendQuery(listener->conn, sql))
		return -1;
	listener->gate = next;
	listener->arm_refused = false;
	return flush_and_watch(listener);
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
	if (flush_and_watch(listener) < 0)
		fail(listener, "LISTEN failed");
}

/*
 * One result of the query in flight (the session set-up and LISTEN, or a gate query): 0 when it
 * is as expected, -1 when the connection must go. An arming query that ran into lock_timeout is
 * expected: it only means the gate is taken.
 */
static int check_result(struct listener *listener, PGresult *res)
{
	const char *sqlstate;

	if (listener->state == LISTENER_SUBSCRIBING)
		return PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return 0;
	sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (listener->gate == GATE_ARMING && sqlstate && strcmp(sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0) {
		listener->arm_refused = true;
		return 0;
	}
	return -1;
}

/* The query in flight completed: record what it did. Returns the event it calls for, if any. */
static int complete_query(struct listener *listener)
{
	if (listener->state == LISTENER_SUBSCRIBING) {
		listener->state = LISTENER_LISTENING;
		return LISTENER_READY;
	}
	if (listener->gate == GATE_ARMING) {
		listener->gate = listener->arm_refused ? GATE_OPEN : GATE_ARMED;
		return listener->arm_refused ? LISTENER_ARM_BUSY : LISTENER_ARMED;
	}
	listener->gate = GATE_OPEN; /* GATE_DISARMING */
	return -1;
}

/*
 * Read what arrived: the result of the query in flight, then any notifications. A notification
 * disarms the gate (or cancels arming). The event is sent last, once the connection is no longer
 * touched, so that the owner may stop or restart the listener from its callback. Readiness and a
 * wake both ask for work, so a read reports at most one event: ready, else wake, else the outcome
 * of arming (when arming is still wanted).
 */
static void read_input(struct listener *listener)
{
	PGnotify *notify;
	bool wake = false, wanted = listener->want_armed;
	int event = -1;
	bool query_in_flight = listener->state == LISTENER_SUBSCRIBING || listener->gate == GATE_ARMING ||
			       listener->gate == GATE_DISARMING;

	if (!PQconsumeInput(listener->conn)) {
		fail(listener, "connection lost");
		return;
	}
	while (query_in_flight && !PQisBusy(listener->conn)) {
		PGresult *res = PQgetResult(listener->conn);
		if (!res) {
			event = complete_query(listener);
			break;
		}
		if (check_result(listener, res) < 0) {
			PQclear(res);
			fail(listener, listener->state == LISTENER_SUBSCRIBING ? "LISTEN failed" : "wake-up gate failed");
			return;
		}
		PQclear(res);
	}
	while ((notify = PQnotifies(listener->conn)) != NULL) {
		wake = true;
		PQfreemem(notify);
	}
	if (PQstatus(listener->conn) != CONNECTION_OK) {
		fail(listener, "connection lost");
		return;
	}
	if (wake || event == LISTENER_ARM_BUSY)
		listener->want_armed = false;
	if (event == LISTENER_READY)
		wake = false; /* ready implies a look for work */
	else if (wake || !wanted)
		event = -1; /* a wake makes arming moot; an arming nobody wants any more says nothing */
	if (gate_reconcile(listener) < 0) {
		fail(listener, "wake-up gate failed");
		return;
	}
	if (wake)
		listener->callback(listener->owner, LISTENER_WAKE, NULL, NULL);
	else if (event >= 0)
		listener->callback(listener->owner, (enum listener_event)event, NULL, NULL);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
	struct listener *listener = handle->data;

	if (status < 0) {
		fail(listener, uv_strerror(status));
		return;
	}
	if (listener->state == LISTENER_CONNECTING) {
		drive_connect(listener);
		return;
	}
	if ((events & UV_WRITABLE) && flush_and_watch(listener) < 0) {
		fail(listener, "connection lost");
		return;
	}
	if (events & UV_READABLE)
		read_input(listener);
}

void listener_arm(struct listener *listener)
{
	if (listener->state != LISTENER_LISTENING || listener->want_armed)
		return;
	listener->want_armed = true;
	if (gate_reconcile(listener) < 0)
		fail(listener, "wake-up gate failed");
}

bool listener_armed(const struct listener *listener)
{
	return listener->gate == GATE_ARMED && listener->want_armed;
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
