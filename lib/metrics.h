/*
 * metrics: passportd's numbers for Prometheus: counters of what the batches did, a histogram of
 * batch durations, whether the database and the listener are up, the queue gauges read from the
 * database, and the build; rendered in the Prometheus text format (version 0.0.4).
 *
 * Threads: a struct metrics is shared by the loop thread (metrics_add_pass, the up gauges), the
 * worker thread (metrics_refresh_queue, between batches) and the HTTP thread (metrics_render).
 * Every function takes the registry's mutex only to copy numbers in or out, never across I/O or
 * formatting, so a scrape can never hold up a batch. Every function accepts a NULL registry and
 * then does nothing (NULL is "metrics off").
 *
 * The worker fills a struct metrics_pass of its own while it runs batches, without any lock, and
 * the loop thread adds it to the registry in one step when the pass is over.
 */
#ifndef PASSPORT_METRICS_H
#define PASSPORT_METRICS_H

#include <stdbool.h>

#include <libpq-fe.h>

struct batch_totals;
struct queue_counts;

/* Upper bounds (seconds) of the batch duration histogram's buckets; +Inf follows them. */
#define METRICS_DURATION_BUCKETS 13
extern const double metrics_duration_bounds[METRICS_DURATION_BUCKETS];

/* Observations of a histogram; counts are per bucket (not cumulative), the last one is +Inf. */
struct metrics_histogram {
	unsigned long long counts[METRICS_DURATION_BUCKETS + 1];
	unsigned long long count;
	double sum;
};

/* Count one observation of seconds. */
void metrics_histogram_observe(struct metrics_histogram *histogram, double seconds);

/* What a pass of the worker adds besides its batch_totals. Zero it before the pass. */
struct metrics_pass {
	struct metrics_histogram batch_durations; /* one observation per batch that claimed entries */
	double last_batch_time;                   /* Unix time the last such batch ended; 0 for none */
};

/* What the build_info metric's labels say (copied by metrics_create). */
struct metrics_build {
	const char *version;
	const char *revision;
	const char *libpq;
	const char *blas;
	bool sd_notify;
};

/* A registry with every counter at zero, both up gauges at 0 and no queue reading yet; NULL when out of memory. */
struct metrics *metrics_create(const struct metrics_build *build);
void metrics_destroy(struct metrics *metrics);

/* Add a finished pass: its totals (from processor_run_batch) and its durations. */
void metrics_add_pass(struct metrics *metrics, const struct batch_totals *totals, const struct metrics_pass *pass);

void metrics_set_database_up(struct metrics *metrics, bool up);
void metrics_set_listener_up(struct metrics *metrics, bool up);

/* Record a queue reading (taken now). */
void metrics_set_queue(struct metrics *metrics, const struct queue_counts *counts);

/*
 * Read the queue gauges on conn when the last attempt is at least max_age_seconds old (or there
 * was none); otherwise do nothing. conn must be idle, outside any transaction: the worker calls
 * it between batches, never inside one. A failed reading keeps the previous values, counts in
 * passportd_queue_read_errors_total and is tried again max_age_seconds later. Returns 0, or -1
 * when the reading failed (the connection may be lost: the caller's next batch finds out).
 */
int metrics_refresh_queue(struct metrics *metrics, PGconn *conn, double max_age_seconds);

/* The Prometheus text exposition of every metric, malloc'd (caller frees); NULL when out of memory. */
char *metrics_render(struct metrics *metrics);

#endif
