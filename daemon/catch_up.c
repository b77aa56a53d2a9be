/*
 * catch_up: helper connections for `passportd run` while a backlog lasts (catch_up.h).
 */
#include "catch_up.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "pause.h"
#include "tables.h"

struct catch_up_helper {
	struct catch_up *owner;
	pthread_t thread;
	struct batch_totals totals;
};

struct catch_up {
	char *dsn;                 /* a copy: the service's config may be reloaded meanwhile */
	struct batch_config batch; /* a copy, read by every helper */
	double pause_read_interval; /* seconds: the poll interval, as the worker reads the pause state */
	atomic_bool *stop;
	atomic_int running; /* helpers not yet ended */
	int count;          /* helpers started */
	struct catch_up_helper *helpers;
};

static double monotonic_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The pause after a claim that found nothing. */
static void catch_up_pause(void)
{
	struct timespec ts = {0, CATCH_UP_PAUSE_MS * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * Batches until nothing has been claimable for CATCH_UP_IDLE_SECONDS; then disconnect. Not at the
 * first empty or busy claim: with several connections on one backlog, a claim often finds every
 * user it would take held by another connection (or their DNA rows locked), and stopping there
 * left the service alone with the backlog.
 */
static void *catch_up_work(void *arg)
{
	struct catch_up_helper *h = arg;
	struct catch_up *c = h->owner;
	struct db_error error;
	struct processor *processor = NULL;
	struct batch_config batch = c->batch;
	double idle_since = 0, pause_read_at = 0;
	PGconn *conn = db_connect(c->dsn, "passportd catch-up", &error);

	if (!conn) {
		log_warning("catch-up helper: cannot connect: %s", error.message);
		goto finish;
	}
	processor = processor_create(conn, &batch, &error);
	if (!processor) {
		log_warning("catch-up helper: %s", error.message);
		goto finish_conn;
	}

	while (!atomic_load(c->stop)) {
		int status;

		/* `passportd pause` reaches the helpers as it reaches the worker: within a poll interval. */
		if (monotonic_seconds() - pause_read_at >= c->pause_read_interval) {
			unsigned paused;

			if (pause_read(conn, &paused, &error) < 0) {
				log_warning("catch-up helper: %s", error.message);
				break;
			}
			pause_read_at = monotonic_seconds();
			if (paused == SYSTEM_ALL)
				break; /* paused: the worker claims nothing either */
			if (paused != batch.paused_systems) {
				batch.paused_systems = paused;
				processor_set_config(processor, &batch);
			}
		}
		status = processor_run_batch(processor, &h->totals, &error);

		if (status == BATCH_ERROR) {
			log_warning("catch-up helper: batch failed: %s", error.message);
			break;
		}
		if (status == BATCH_DONE) {
			idle_since = 0;
			continue;
		}
		if (idle_since == 0)
			idle_since = monotonic_seconds();
		else if (monotonic_seconds() - idle_since > CATCH_UP_IDLE_SECONDS)
			break;
		catch_up_pause();
	}
	processor_destroy(processor);
finish_conn:
	PQfinish(conn);
finish:
	atomic_fetch_sub(&c->running, 1);
	return NULL;
}

struct catch_up *catch_up_start(const struct config *config, const struct batch_config *batch, int helpers,
				atomic_bool *stop)
{
	struct catch_up *c = calloc(1, sizeof(*c));

	if (!c || helpers < 1)
		goto fail;
	c->dsn = strdup(config->dsn ? config->dsn : "");
	c->helpers = calloc((size_t)helpers, sizeof(*c->helpers));
	if (!c->dsn || !c->helpers)
		goto fail;
	c->batch = *batch;
	c->pause_read_interval = config->poll_interval;
	c->stop = stop;
	atomic_init(&c->running, helpers);
	for (int i = 0; i < helpers; i++) {
		c->helpers[i].owner = c;
		if (pthread_create(&c->helpers[i].thread, NULL, catch_up_work, &c->helpers[i]) != 0) {
			log_warning("catch-up: cannot start a helper thread");
			atomic_fetch_sub(&c->running, helpers - i); /* the ones never started */
			break;
		}
		c->count++;
	}
	if (c->count == 0)
		goto fail;
	log_info("catching up on a backlog with %d more connection%s", c->count, c->count == 1 ? "" : "s");
	return c;
fail:
	if (c) {
		free(c->helpers);
		free(c->dsn);
		free(c);
	}
	return NULL;
}

bool catch_up_running(struct catch_up *c)
{
	return c && atomic_load(&c->running) > 0;
}

void catch_up_finish(struct catch_up *c, struct batch_totals *totals)
{
	if (!c)
		return;
	for (int i = 0; i < c->count; i++) {
		pthread_join(c->helpers[i].thread, NULL);
		batch_totals_add(totals, &c->helpers[i].totals);
	}
	free(c->helpers);
	free(c->dsn);
	free(c);
}
