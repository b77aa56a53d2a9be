/*
 * test_metrics: the metrics registry without a server: histogram buckets, what a pass adds, the
 * Prometheus text format (every sample under a HELP and TYPE of its family, cumulative buckets,
 * escaped label values, queue gauges absent until read), NULL as "metrics off", and the listen
 * address syntax of metrics_listen.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "metrics.h"
#include "queue.h"
#include "task.h"

static void test_histogram(void)
{
	struct metrics_histogram h = {0};

	metrics_histogram_observe(&h, 0.001);
	metrics_histogram_observe(&h, 0.005); /* a bound belongs to its bucket (le) */
	metrics_histogram_observe(&h, 0.3);
	metrics_histogram_observe(&h, 1000);
	ASSERT_EQ_INT((int)h.counts[0], 2);
	ASSERT_EQ_INT((int)h.counts[6], 1); /* le 0.5 */
	ASSERT_EQ_INT((int)h.counts[METRICS_DURATION_BUCKETS], 1);
	ASSERT_EQ_INT((int)h.count, 4);
	ASSERT_EQ_DBL(h.sum, 1000.306, 1e-9);
}

/*
 * The text format: comments are "# HELP name text" or "# TYPE name type"; each sample
 * "name[{labels}] value" belongs to the family declared last (name, or name_bucket/_sum/_count of
 * a histogram); no family is declared twice.
 */
static void check_exposition(const char *text)
{
	char family[128] = "", type[32] = "";
	char *copy = strdup(text), *saveptr = NULL;
	int families = 0;

	ASSERT_NOT_NULL(copy);
	ASSERT_TRUE(text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &saveptr); line; line = strtok_r(NULL, "\n", &saveptr)) {
		char name[128], *value;
		size_t n = 0;

		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char declared[160];
			ASSERT_EQ_INT(sscanf(line + 7, "%127s %31s", family, type), 2);
			snprintf(declared, sizeof(declared), "# TYPE %s ", family);
			if (strstr(strstr(text, declared) + 1, declared))
				FAIL("family %s declared twice", family);
			families++;
			continue;
		}
		ASSERT_TRUE(line[0] != '#');
		while (isalnum((unsigned char)line[n]) || line[n] == '_')
			n++;
		ASSERT_TRUE(n > 0 && n < sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		if (strcmp(type, "histogram") == 0) {
			size_t f = strlen(family);
			ASSERT_TRUE(strncmp(name, family, f) == 0);
			ASSERT_TRUE(!strcmp(name + f, "_bucket") || !strcmp(name + f, "_sum") || !strcmp(name + f, "_count"));
		} else {
			ASSERT_STR_EQ(name, family);
		}
		if (strcmp(type, "counter") == 0)
			ASSERT_TRUE(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0);
		value = strrchr(line, ' ');
		ASSERT_NOT_NULL(value);
		if (strcmp(value + 1, "+Inf") != 0) {
			char *end;
			(void)strtod(value + 1, &end);
			ASSERT_TRUE(*end == '\0');
		}
	}
	ASSERT_GT_INT(families, 10);
	free(copy);
}

static double sample(const char *body, const char *name)
{
	size_t n = strlen(name);

	for (const char *line = body; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	return NAN;
}

static void test_render(void)
{
	struct metrics_build build = {"1.2.3", "abc\"def\\", "15.4", "Open\nBLAS", true};
	struct metrics *m = metrics_create(&build);
	struct batch_totals totals = {.batches = 3, .claimed = 70, .processed = 60, .retrying = 4, .dead = 6,
				      .dna_rows = 9, .skipped_systems = 2};
	struct metrics_pass pass = {0};
	struct queue_counts queue = {.due = 5, .retrying = 4, .dead = 6, .has_oldest_due = true,
				     .oldest_due_age_seconds = 12.5};
	char *text;

	ASSERT_NOT_NULL(m);
	text = metrics_render(m);
	check_exposition(text);
	ASSERT_STR_CONTAINS(text, "passportd_build_info{version=\"1.2.3\",revision=\"abc\\\"def\\\\\",libpq=\"15.4\","
				  "blas=\"Open\\nBLAS\",sd_notify=\"yes\"} 1\n");
	ASSERT_STR_NOT_CONTAINS(text, "passportd_queue_due");
	ASSERT_STR_NOT_CONTAINS(text, "passportd_last_batch_timestamp_seconds");
	ASSERT_EQ_DBL(sample(text, "passportd_database_up"), 0, 0);
	free(text);

	metrics_histogram_observe(&pass.batch_durations, 0.02);
	metrics_histogram_observe(&pass.batch_durations, 3);
	pass.last_batch_time = 1700000000.25;
	metrics_add_pass(m, &totals, &pass);
	metrics_add_pass(m, &totals, &pass);
	metrics_set_database_up(m, true);
	metrics_set_listener_up(m, true);
	metrics_set_queue(m, &queue);
	text = metrics_render(m);
	check_exposition(text);
	ASSERT_EQ_DBL(sample(text, "passportd_entries_processed_total"), 120, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_entries_failed_total{outcome=\"retrying\"}"), 8, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_entries_failed_total{outcome=\"dead\"}"), 12, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batches_total"), 6, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_dna_rows_written_total"), 18, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_system_deliveries_skipped_total"), 4, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_bucket{le=\"0.01\"}"), 0, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_bucket{le=\"0.025\"}"), 2, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_bucket{le=\"2.5\"}"), 2, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_bucket{le=\"5\"}"), 4, 0); /* cumulative */
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_bucket{le=\"+Inf\"}"), 4, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_count"), 4, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_batch_duration_seconds_sum"), 6.04, 1e-9);
	ASSERT_EQ_DBL(sample(text, "passportd_last_batch_timestamp_seconds"), 1700000000.25, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_database_up"), 1, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_listener_up"), 1, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_queue_due"), 5, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_queue_retrying"), 4, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_queue_dead"), 6, 0);
	ASSERT_EQ_DBL(sample(text, "passportd_queue_oldest_due_age_seconds"), 12.5, 0);
	ASSERT_TRUE(sample(text, "passportd_queue_read_timestamp_seconds") > 1700000000);
	free(text);
	metrics_destroy(m);
}

/* NULL is "metrics off": every call is a no-op. */
static void test_null_registry(void)
{
	struct batch_totals totals = {0};
	struct metrics_pass pass = {0};
	struct queue_counts queue = {0};
	char *text;

	metrics_add_pass(NULL, &totals, &pass);
	metrics_set_database_up(NULL, true);
	metrics_set_listener_up(NULL, true);
	metrics_set_queue(NULL, &queue);
	ASSERT_EQ_INT(metrics_refresh_queue(NULL, NULL, 1), 0);
	text = metrics_render(NULL);
	ASSERT_STR_EQ(text, "");
	free(text);
	metrics_destroy(NULL);
}

static void test_listen_address(void)
{
	char host[CONFIG_ADDRESS_MAX], err[256];
	struct config c;
	int port = 0;

	ASSERT_EQ_INT(config_parse_listen_address("127.0.0.1:9189", host, sizeof(host), &port, err, sizeof(err)), 0);
	ASSERT_STR_EQ(host, "127.0.0.1");
	ASSERT_EQ_INT(port, 9189);
	ASSERT_EQ_INT(config_parse_listen_address("[::1]:80", host, sizeof(host), &port, err, sizeof(err)), 0);
	ASSERT_STR_EQ(host, "::1");
	ASSERT_EQ_INT(port, 80);
	ASSERT_EQ_INT(config_parse_listen_address(":65535", host, sizeof(host), &port, err, sizeof(err)), 0);
	ASSERT_STR_EQ(host, "");
	ASSERT_EQ_INT(config_parse_listen_address("metrics.internal:9189", host, sizeof(host), &port, err, sizeof(err)), 0);
	ASSERT_STR_EQ(host, "metrics.internal");
	ASSERT_EQ_INT(config_parse_listen_address("localhost", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("::1:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_STR_CONTAINS(err, "[ADDRESS]:PORT");
	ASSERT_EQ_INT(config_parse_listen_address("[::1]80", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("host:0", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("host:65536", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("host:80x", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("host:", host, sizeof(host), &port, err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_parse_listen_address("toolong:1", host, 4, &port, err, sizeof(err)), -1);

	/* Through the option table: off by default, validated when set, printed as given. */
	config_init(&c);
	ASSERT_STR_EQ(c.metrics_listen, "");
	ASSERT_EQ_INT(config_set(&c, "metrics_listen", "no-port", err, sizeof(err)), -1);
	ASSERT_STR_CONTAINS(err, "metrics_listen");
	ASSERT_EQ_INT(config_set(&c, "metrics_listen", "[::]:9189", err, sizeof(err)), 0);
	{
		char *text = config_value_text(&c, config_find("metrics_listen"));
		ASSERT_STR_EQ(text, "[::]:9189");
		free(text);
	}
	ASSERT_EQ_INT(config_set(&c, "metrics_listen", "", err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.metrics_listen, "");
	config_finish(&c);
}

int main(void)
{
	test_histogram();
	test_render();
	test_null_registry();
	test_listen_address();
	TEST_PASS();
}
