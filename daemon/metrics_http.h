/*
 * metrics_http: the /metrics endpoint of `passportd run`, served by libmicrohttpd on a thread of
 * its own. Each scrape renders the shared registry (lib/metrics.h), which only copies numbers
 * under the registry's mutex: a scrape never waits for a batch and a batch never waits for a
 * scrape.
 */
#ifndef PASSPORTD_METRICS_HTTP_H
#define PASSPORTD_METRICS_HTTP_H

#include <stddef.h>

struct metrics;
struct metrics_http;

/*
 * Bind address ("HOST:PORT", "[IPV6]:PORT" or ":PORT", as config_parse_listen_address reads it)
 * and serve metrics there: GET /metrics answers the text exposition, GET / a pointer to it,
 * anything else 404 (405 for other methods). The socket is bound before this returns, so an
 * address in use or not available is reported here: NULL with a reason in err naming the
 * address. metrics must outlive the server. Release with metrics_http_destroy.
 */
struct metrics_http *metrics_http_create(struct metrics *metrics, const char *address, char *err, size_t errlen);

/* Stop serving (waits for the thread; open scrapes are closed) and free. Accepts NULL. */
void metrics_http_destroy(struct metrics_http *server);

#endif
