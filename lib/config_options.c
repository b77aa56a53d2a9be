/*
 * config_options: the option table (name, type, field, default, reloadable, bounds, help), the
 * defaults derived from the machine, and what a processor takes of a configuration. The parsing,
 * layering and reloading of these options live in config.c.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"

#define FIELD(name) offsetof(struct config, name)

const struct config_option config_options[] = {
	{"dsn", CONFIG_STRING, FIELD(dsn), "", false, 0, 0,
	 "connection string or URI (empty: $PASSPORT_DATABASE_URL, then libpq's PG* environment)"},
	{"batch_size", CONFIG_INT, FIELD(batch_size), "1000", true, 1, 100000, "entries claimed per batch"},
	{"workers", CONFIG_INT, FIELD(workers), "0", false, 0, 64,
	 "connections that work in parallel, each on different users (drain; run after a full batch, until the backlog is cleared); 0: one per online CPU, at most 4"},
	{"poll_interval", CONFIG_DOUBLE, FIELD(poll_interval), "5", true, 0.05, 3600,
	 "seconds between polls for due retries and missed notifications"},
	{"log_level", CONFIG_LOG_LEVEL, FIELD(log_level), "info", true, 0, 0,
	 "error, warning, notice, info or debug"},
	{"log_format", CONFIG_LOG_FORMAT, FIELD(log_format), "auto", false, 0, 0,
	 "auto (journal prefixes under systemd, else plain), plain, journal or json"},
	{"listen", CONFIG_BOOL, FIELD(listen), "true", false, 0, 0,
	 "wake on NOTIFY; false polls only (for transaction poolers, where LISTEN does not work)"},
	{"systems", CONFIG_SYSTEMS, FIELD(systems), "mediaid,coliseum,treasury", true, 0, 0,
	 "enabled systems; entries that need another stay unprocessed (postponed), never lost"},
	{"max_attempts", CONFIG_INT, FIELD(max_attempts), "5", true, 1, 1000,
	 "failed attempts after which an entry is dead"},
	{"retry_base", CONFIG_DOUBLE, FIELD(retry_base), "10", true, 0.01, 86400,
	 "seconds before the first retry; doubled per attempt, with jitter"},
	{"retry_cap", CONFIG_DOUBLE, FIELD(retry_cap), "3600", true, 0.01, 604800, "longest retry delay in seconds"},
	{"max_payload_bytes", CONFIG_LONG, FIELD(max_payload_bytes), "1048576", true, 2, 268435456,
	 "larger payloads are a permanent error of their entry"},
	{"statement_timeout", CONFIG_DOUBLE, FIELD(statement_timeout), "60", true, 0.1, 86400,
	 "run: seconds one statement of the worker may take before the server cancels it"},
	{"synchronous_commit", CONFIG_BOOL, FIELD(synchronous_commit), "true", true, 0, 0,
	 "true: each batch's COMMIT waits for its WAL flush; false: it does not, and a server crash may undo the last batches whole, to be processed again"},
	{"metrics_listen", CONFIG_LISTEN_ADDRESS, FIELD(metrics_listen), "", false, 0, 0,
	 "HOST:PORT where `run` serves Prometheus metrics at /metrics (empty: off)"},
	{NULL, CONFIG_INT, 0, NULL, false, 0, 0, NULL},
};

const struct config_option *config_find(const char *name)
{
	for (const struct config_option *o = config_options; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

int config_machine_parallelism(int cap)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		cpus = 1;
	return cpus < cap ? (int)cpus : (cap > 1 ? cap : 1);
}

int config_workers(const struct config *config)
{
	return config->workers > 0 ? config->workers : config_machine_parallelism(CONFIG_AUTO_WORKERS_MAX);
}

const char *config_default(const char *name)
{
	const struct config_option *o = config_find(name);

	return o ? o->default_value : NULL;
}

void config_to_batch(const struct config *config, struct batch_config *batch)
{
	*batch = (struct batch_config){
		.batch_size = config->batch_size,
		.enabled_systems = config->systems,
		.max_payload_bytes = (size_t)config->max_payload_bytes,
		.max_attempts = config->max_attempts,
		.retry_base_seconds = config->retry_base,
		.retry_cap_seconds = config->retry_cap,
		.synchronous_commit = config->synchronous_commit,
		.shared_entities = NULL,
	};
}
