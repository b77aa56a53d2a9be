/* metrics: passportd's counters, gauges and batch duration histogram, and their Prometheus text form. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "db.h"
#include "queue.h"
#include "strbuf.h"

const double metrics_duration_bounds[METRICS_DURATION_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

/* Every number of the registry; copied whole under the lock, formatted outside it. */
struct metrics_values {
	unsigned long long batches, claimed, processed, retrying, dead, dna_rows, skipped_systems;
	unsigned long long queue_read_errors;
	struct metrics_histogram batch_durations;
	double last_batch_time;
	bool database_up, listener_up;
	bool has_queue;
	struct queue_counts queue;
	double queue_read_time; /* Unix time of the last successful reading */
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_values values;       /* under lock */
	double queue_attempt_monotonic;     /* under lock: when the last reading was tried; < 0 never */
	double start_time;                  /* constant */
	char *build_labels;                 /* constant: the build_info label set, escaped */
};

static double clock_seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_histogram_observe(struct metrics_histogram *histogram, double seconds)
{
	int bucket = 0;

	while (bucket < METRICS_DURATION_BUCKETS && seconds > metrics_duration_bounds[bucket])
		bucket++;
	histogram->counts[bucket]++;
	histogram->count++;
	histogram->sum += seconds;
}

/* A label value with \, " and newline escaped, as the text format requires. */
static void add_label_value(struct strbuf *sb, const char *value)
{
	for (const char *c = value ? value : ""; *c; c++) {
		if (*c == '\\' || *c == '"')
			strbuf_printf(sb, "\\%c", *c);
		else if (*c == '\n')
			strbuf_add_str(sb, "\\n");
		else
			strbuf_add(sb, c, 1);
	}
}

static void add_label(struct strbuf *sb, const char *name, const char *value, bool first)
{
	strbuf_printf(sb, "%s%s=\"", first ? "" : ",", name);
	add_label_value(sb, value);
	strbuf_add_str(sb, "\"");
}

struct metrics *metrics_create(const struct metrics_build *build)
{
	struct metrics *metrics = calloc(1, sizeof(*metrics));
	struct strbuf labels = {0};

	if (!metrics)
		return NULL;
	add_label(&labels, "version", build->version, true);
	add_label(&labels, "revision", build->revision, false);
	add_label(&labels, "libpq", build->libpq, false);
	add_label(&labels, "blas", build->blas, false);
	add_label(&labels, "sd_notify", build->sd_notify ? "yes" : "no", false);
	metrics->build_labels = strbuf_take(&labels);
	if (!metrics->build_labels) {
		free(metrics);
		return NULL;
	}
	pthread_mutex_init(&metrics->lock, NULL);
	metrics->queue_attempt_monotonic = -1;
	metrics->start_time = clock_seconds(CLOCK_REALTIME);
	return metrics;
}

void metrics_destroy(struct metrics *metrics)
{
	if (!metrics)
		return;
	pthread_mutex_destroy(&metrics->lock);
	free(metrics->build_labels);
	free(metrics);
}

void metrics_add_pass(struct metrics *metrics, const struct batch_totals *totals, const struct metrics_pass *pass)
{
	struct metrics_values *v;

	if (!metrics)
		return;
	pthread_mutex_lock(&metrics->lock);
	v = &metrics->values;
	v->batches += (unsigned long long)totals->batches;
	v->claimed += (unsigned long long)totals->claimed;
	v->processed += (unsigned long long)totals->processed;
	v->retrying += (unsigned long long)totals->retrying;
	v->dead += (unsigned long long)totals->dead;
	v->dna_rows += (unsigned long long)totals->dna_rows;
	v->skipped_systems += (unsigned long long)totals->skipped_systems;
	for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++)
		v->batch_durations.counts[i] += pass->batch_durations.counts[i];
	v->batch_durations.count += pass->batch_durations.count;
	v->batch_durations.sum += pass->batch_durations.sum;
	if (pass->last_batch_time > v->last_batch_time)
		v->last_batch_time = pass->last_batch_time;
	pthread_mutex_unlock(&metrics->lock);
}

void metrics_set_database_up(struct metrics *metrics, bool up)
{
	if (!metrics)
		return;
	pthread_mutex_lock(&metrics->lock);
	metrics->values.database_up = up;
	pthread_mutex_unlock(&metrics->lock);
}

void metrics_set_listener_up(struct metrics *metrics, bool up)
{
	if (!metrics)
		return;
	pthread_mutex_lock(&metrics->lock);
	metrics->values.listener_up = up;
	pthread_mutex_unlock(&metrics->lock);
}

void metrics_set_queue(struct metrics *metrics, const struct queue_counts *counts)
{
	if (!metrics)
		return;
	pthread_mutex_lock(&metrics->lock);
	metrics->values.queue = *counts;
	metrics->values.has_queue = true;
	metrics->values.queue_read_time = clock_seconds(CLOCK_REALTIME);
	pthread_mutex_unlock(&metrics->lock);
}

int metrics_refresh_queue(struct metrics *metrics, PGconn *conn, double max_age_seconds)
{
	struct queue_counts counts;
	struct db_error error;
	double now = clock_seconds(CLOCK_MONOTONIC);
	bool due;

	if (!metrics)
		return 0;
	/* Claim the attempt under the lock, so that a reading is never taken twice in one interval. */
	pthread_mutex_lock(&metrics->lock);
	due = metrics->queue_attempt_monotonic < 0 || now - metrics->queue_attempt_monotonic >= max_age_seconds;
	if (due)
		metrics->queue_attempt_monotonic = now;
	pthread_mutex_unlock(&metrics->lock);
	if (!due)
		return 0;
	if (queue_read_counts(conn, &counts, &error) < 0) {
		pthread_mutex_lock(&metrics->lock);
		metrics->values.queue_read_errors++;
		pthread_mutex_unlock(&metrics->lock);
		return -1;
	}
	metrics_set_queue(metrics, &counts);
	return 0;
}

static void add_family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void add_counter(struct strbuf *sb, const char *name, const char *help, unsigned long long value)
{
	add_family(sb, name, "counter", help);
	strbuf_printf(sb, "%s %llu\n", name, value);
}

static void add_gauge(struct strbuf *sb, const char *name, const char *help, double value)
{
	add_family(sb, name, "gauge", help);
	strbuf_printf(sb, "%s %.17g\n", name, value);
}

static void add_histogram(struct strbuf *sb, const char *name, const char *help, const struct metrics_histogram *h)
{
	unsigned long long cumulative = 0;

	add_family(sb, name, "histogram", help);
	for (int i = 0; i < METRICS_DURATION_BUCKETS; i++) {
		cumulative += h->counts[i];
		strbuf_printf(sb, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_duration_bounds[i], cumulative);
	}
	strbuf_printf(sb, "%s_bucket{le=\"+Inf\"} %llu\n", name, h->count);
	strbuf_printf(sb, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name, h->count);
}

char *metrics_render(struct metrics *metrics)
{
	struct metrics_values v;
	struct strbuf sb = {0};

	if (!metrics)
		return strdup("");
	pthread_mutex_lock(&metrics->lock);
	v = metrics->values;
	pthread_mutex_unlock(&metrics->lock);

	add_family(&sb, "passportd_build_info", "gauge",
		   "The build: version, git revision, libpq version, BLAS library, sd_notify support.");
	strbuf_printf(&sb, "passportd_build_info{%s} 1\n", metrics->build_labels);
	add_gauge(&sb, "passportd_start_time_seconds", "Unix time the daemon started.", metrics->start_time);

	add_counter(&sb, "passportd_entries_processed_total",
		    "Entries committed with all their effects.", v.processed);
	add_family(&sb, "passportd_entries_failed_total", "counter",
		   "Failed attempts, by outcome: retrying (a retry is scheduled) or dead (failed for good).");
	strbuf_printf(&sb, "passportd_entries_failed_total{outcome=\"retrying\"} %llu\n", v.retrying);
	strbuf_printf(&sb, "passportd_entries_failed_total{outcome=\"dead\"} %llu\n", v.dead);
	add_counter(&sb, "passportd_entries_claimed_total", "Entries claimed by batches.", v.claimed);
	add_counter(&sb, "passportd_batches_total", "Batches that claimed entries.", v.batches);
	add_histogram(&sb, "passportd_batch_duration_seconds",
		      "Time from claiming a batch to its commit, per batch that claimed entries.", &v.batch_durations);
	add_counter(&sb, "passportd_dna_rows_written_total", "DNA rows (media_ids.profile_embedding) written.",
		    v.dna_rows);
	add_counter(&sb, "passportd_system_deliveries_skipped_total",
		    "Deliveries held back because their system is disabled or paused (the entry is postponed).", v.skipped_systems);
	add_gauge(&sb, "passportd_database_up",
		  "1 when the worker's last pass reached the database, else 0.", v.database_up ? 1 : 0);
	add_gauge(&sb, "passportd_listener_up",
		  "1 while the LISTEN connection is established, else 0 (always 0 with listen = false).",
		  v.listener_up ? 1 : 0);
	if (v.last_batch_time > 0)
		add_gauge(&sb, "passportd_last_batch_timestamp_seconds",
			  "Unix time the last batch that claimed entries ended.", v.last_batch_time);

	add_counter(&sb, "passportd_queue_read_errors_total", "Failed readings of the queue gauges.",
		    v.queue_read_errors);
	/* No reading yet: the queue gauges are absent rather than a misleading 0. */
	if (v.has_queue) {
		add_gauge(&sb, "passportd_queue_due", "Entries due now (read from the database).", (double)v.queue.due);
		add_gauge(&sb, "passportd_queue_retrying", "Entries waiting for a scheduled retry.",
			  (double)v.queue.retrying);
		add_gauge(&sb, "passportd_queue_dead", "Entries that failed for good.", (double)v.queue.dead);
		add_gauge(&sb, "passportd_queue_oldest_due_age_seconds",
			  "Age of the oldest due entry's timestamp; 0 when nothing is due.",
			  v.queue.has_oldest_due ? v.queue.oldest_due_age_seconds : 0);
		add_gauge(&sb, "passportd_queue_read_timestamp_seconds", "Unix time the queue gauges were read.",
			  v.queue_read_time);
	}
	return strbuf_take(&sb);
}
