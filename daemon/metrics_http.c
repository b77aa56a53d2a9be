/* metrics_http: libmicrohttpd serving the Prometheus text exposition of lib/metrics at /metrics. */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "metrics.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define CONNECTION_LIMIT 16
#define CONNECTION_TIMEOUT_SECONDS 10

static const char INDEX_PAGE[] =
	"<html><head><title>passportd</title></head><body><h1>passportd</h1>"
	"<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

struct metrics_http {
	struct MHD_Daemon *daemon;
	struct metrics *metrics;
};

static enum MHD_Result respond(struct MHD_Connection *connection, unsigned int status, const char *content_type,
			       void *body, size_t length, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *response = MHD_create_response_from_buffer(length, body, mode);
	enum MHD_Result result;

	if (!response) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size,
			      void **request_state)
{
	struct metrics_http *server = cls;
	char *body;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)request_state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", (void *)"GET only\n", 9,
			       MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") == 0) {
		body = metrics_render(server->metrics);
		if (!body)
			return respond(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
				       (void *)"out of memory\n", 14, MHD_RESPMEM_PERSISTENT);
		return respond(connection, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, strlen(body), MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/") == 0)
		return respond(connection, MHD_HTTP_OK, "text/html", (void *)INDEX_PAGE, sizeof(INDEX_PAGE) - 1,
			       MHD_RESPMEM_PERSISTENT);
	return respond(connection, MHD_HTTP_NOT_FOUND, "text/plain", (void *)"not found; try /metrics\n", 24,
		       MHD_RESPMEM_PERSISTENT);
}

/*
 * A listening socket bound to address, or -1 with a reason. Binding here rather than inside
 * libmicrohttpd keeps errno, so that "address already in use" reaches the operator as such.
 */
static int bind_address(const char *address, char *err, size_t errlen)
{
	struct addrinfo hints, *found = NULL;
	char host[CONFIG_ADDRESS_MAX], port_text[16], reason[200];
	int port, rc, fd = -1, saved_errno = 0, one = 1;

	if (config_parse_listen_address(address, host, sizeof(host), &port, reason, sizeof(reason)) < 0) {
		snprintf(err, errlen, "metrics_listen: %s", reason);
		return -1;
	}
	snprintf(port_text, sizeof(port_text), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port_text, &hints, &found);
	if (rc != 0) {
		snprintf(err, errlen, "metrics_listen %s: cannot resolve '%s': %s", address, host, gai_strerror(rc));
		return -1;
	}
	/* The first address that binds: for ":PORT" getaddrinfo lists the IPv6 wildcard first (dual stack). */
	for (struct addrinfo *ai = found; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved_errno = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
			break;
		saved_errno = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(found);
	if (fd < 0)
		snprintf(err, errlen, "metrics_listen %s: cannot listen: %s", address, strerror(saved_errno));
	return fd;
}

struct metrics_http *metrics_http_create(struct metrics *metrics, const char *address, char *err, size_t errlen)
{
	struct metrics_http *server = calloc(1, sizeof(*server));
	int fd;

	if (!server) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	server->metrics = metrics;
	fd = bind_address(address, err, errlen);
	if (fd < 0) {
		free(server);
		return NULL;
	}
	/* The port argument is ignored when a listening socket is given; the daemon closes it on stop. */
	server->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer,
					  server, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
					  (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
					  (unsigned int)CONNECTION_TIMEOUT_SECONDS, MHD_OPTION_END);
	if (!server->daemon) {
		snprintf(err, errlen, "metrics_listen %s: cannot start the HTTP server", address);
		close(fd);
		free(server);
		return NULL;
	}
	return server;
}

void metrics_http_destroy(struct metrics_http *server)
{
	if (!server)
		return;
	MHD_stop_daemon(server->daemon);
	free(server);
}
