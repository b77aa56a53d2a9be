/*
 * latency: the P2 probe. Inserts single entries, each in its own transaction, at a fixed pace, and
 * once all are processed reports the time from each insert's commit to its processed_at.
 *
 * Usage: latency CONNINFO COUNT PER_SECOND USERS
 *
 * The commit time is the client's CLOCK_REALTIME when the INSERT's (autocommit) result arrives;
 * processed_at comes from the server on the same machine, hence the same clock. processed_at is
 * now() of the processing transaction, i.e. when that transaction began; with
 * track_commit_timestamp on, the probe also reports the time until the processing transaction
 * committed (when the effects became visible).
 *
 * Prints one line per figure and a last machine-readable line:
 *   RESULT n=... p50_ms=... p90_ms=... p99_ms=... max_ms=... visible_p50_ms=... visible_p99_ms=...
 * Build: cc -O2 -o latency latency.c -I$(pg_config --includedir) -lpq -lm
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define UUID_LEN 36

struct sample {
	char id[UUID_LEN + 1];
	int64_t committed_us;
	double latency_ms;
	double visible_ms;
};

static int64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until(const struct timespec *start, double offset_s)
{
	struct timespec at = *start;
	long long ns = (long long)(offset_s * 1e9);

	at.tv_sec += (time_t)(ns / 1000000000LL);
	at.tv_nsec += (long)(ns % 1000000000LL);
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
		;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, int n, double p)
{
	int rank;

	if (n == 0)
		return NAN;
	rank = (int)ceil(p / 100.0 * n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static void report(const char *name, double *values, int n, double *p50, double *p99)
{
	qsort(values, (size_t)n, sizeof(*values), compare_double);
	*p50 = percentile(values, n, 50);
	*p99 = percentile(values, n, 99);
	printf("  %-28s n=%d  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", name, n, *p50,
	       percentile(values, n, 90), *p99, n ? values[n - 1] : NAN);
}

int main(int argc, char **argv)
{
	PGconn *conn;
	PGresult *res;
	struct sample *samples;
	struct timespec start;
	int count, users, missing = 0, with_visible = 0;
	double rate, p50, p99, vis_p50 = NAN, vis_p99 = NAN, max_ms;
	double *latencies, *visible;
	char *ids;
	size_t ids_len;

	if (argc != 5) {
		fprintf(stderr, "usage: latency CONNINFO COUNT PER_SECOND USERS\n");
		return 2;
	}
	count = atoi(argv[2]);
	rate = atof(argv[3]);
	users = atoi(argv[4]);
	if (count < 1 || rate <= 0 || users < 1) {
		fprintf(stderr, "latency: COUNT, PER_SECOND and USERS must be positive\n");
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "latency: %s", PQerrorMessage(conn));
		return 1;
	}
	samples = calloc((size_t)count, sizeof(*samples));
	latencies = calloc((size_t)count, sizeof(*latencies));
	visible = calloc((size_t)count, sizeof(*visible));
	if (!samples || !latencies || !visible)
		return 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < count; i++) {
		char user[16], track[16];
		const char *values[2] = {user, track};

		snprintf(user, sizeof(user), "%d", 1 + i % users);
		snprintf(track, sizeof(track), "%d", 1 + (i * 7) % (users / 5 * 4 > 0 ? users / 5 * 4 : 1));
		sleep_until(&start, i / rate);
		/* A play: mediaid (a DNA update with a track target) and coliseum, the common case. */
		res = PQexecParams(conn,
				   "INSERT INTO passport_entries (user_id, event_type, event_category, payload, source, session_id)"
				   " VALUES (passport_test_uuid('user-' || $1), 'player.track_played', 'interaction',"
				   " jsonb_build_object('trackId', passport_test_uuid('track-' || $2)::text), 'web', 'p2')"
				   " RETURNING id::text",
				   2, NULL, values, NULL, NULL, 0);
		samples[i].committed_us = realtime_us();
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "latency: insert failed: %s", PQerrorMessage(conn));
			return 1;
		}
		snprintf(samples[i].id, sizeof(samples[i].id), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}

	ids_len = (size_t)count * (UUID_LEN + 1) + 3;
	ids = malloc(ids_len);
	if (!ids)
		return 1;
	ids[0] = '{';
	ids[1] = '\0';
	for (int i = 0; i < count; i++) {
		strcat(ids, samples[i].id);
		strcat(ids, i + 1 < count ? "," : "}");
	}

	/* Wait (up to 60 s) until every entry is processed. */
	for (int waited = 0; waited < 600; waited++) {
		const char *values[1] = {ids};
		res = PQexecParams(conn, "SELECT count(*) FROM passport_entries WHERE id = ANY($1::uuid[]) AND NOT processed",
				   1, NULL, values, NULL, NULL, 0);
		missing = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : count;
		PQclear(res);
		if (missing == 0)
			break;
		{
			struct timespec pause = {0, 100000000L};
			nanosleep(&pause, NULL);
		}
	}

	{
		const char *values[1] = {ids};
		res = PQexecParams(conn,
				   "SELECT id::text, floor(extract(epoch FROM processed_at) * 1000000)::bigint::text,"
				   " CASE WHEN current_setting('track_commit_timestamp') = 'on'"
				   " THEN floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint::text END"
				   " FROM passport_entries WHERE id = ANY($1::uuid[]) AND processed",
				   1, NULL, values, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "latency: %s", PQerrorMessage(conn));
		return 1;
	}
	{
		int n = 0;
		for (int r = 0; r < PQntuples(res); r++) {
			const char *id = PQgetvalue(res, r, 0);
			for (int i = 0; i < count; i++) {
				if (strcmp(samples[i].id, id) != 0)
					continue;
				latencies[n++] = (double)(strtoll(PQgetvalue(res, r, 1), NULL, 10) - samples[i].committed_us) / 1000.0;
				if (!PQgetisnull(res, r, 2))
					visible[with_visible++] =
						(double)(strtoll(PQgetvalue(res, r, 2), NULL, 10) - samples[i].committed_us) / 1000.0;
				break;
			}
		}
		PQclear(res);
		printf("P2 probe: %d entries at %.0f/s, %d not processed within 60 s\n", count, rate, count - n);
		report("commit -> processed_at", latencies, n, &p50, &p99);
		max_ms = n ? latencies[n - 1] : NAN;
		if (with_visible)
			report("commit -> processing commit", visible, with_visible, &vis_p50, &vis_p99);
		printf("RESULT n=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f visible_p50_ms=%.3f visible_p99_ms=%.3f\n", n,
		       p50, percentile(latencies, n, 90), p99, max_ms, vis_p50, vis_p99);
	}
	free(ids);
	free(samples);
	free(latencies);
	free(visible);
	PQfinish(conn);
	return 0;
}
