/*
 * config: passportd's options as one table (name, type, default, reloadable), read from
 * defaults < config file < environment (PASSPORTD_<NAME>) < command line, and applied again on
 * SIGHUP. The table is the only place that knows a default: config_init, the batch settings,
 * the example file (kept in step by tests/unit/test_config.c) and `passportd --help` read it.
 */
#ifndef PASSPORT_CONFIG_H
#define PASSPORT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "build_config.h"

/* The configured sysconfdir's passportd.conf: /etc/passportd/passportd.conf in every normal build. */
#define CONFIG_DEFAULT_PATH PASSPORT_SYSCONFDIR "/passportd/passportd.conf"

#define CONFIG_ADDRESS_MAX 128 /* longest "HOST:PORT", terminator included */

struct config {
	char *dsn;                 /* "" = $PASSPORT_DATABASE_URL, then libpq's environment */
	int batch_size;
	int workers;               /* drain: parallel connections; 0: config_workers() derives them */
	double poll_interval;      /* seconds between polls for retries and missed notifications */
	int log_level;             /* enum log_level */
	int log_format;            /* enum log_format */
	bool listen;               /* false: poll only (transaction poolers) */
	unsigned systems;          /* enabled systems, bitmask of enum passport_system */
	int max_attempts;
	double retry_base;         /* seconds */
	double retry_cap;          /* seconds */
	long max_payload_bytes;
	double statement_timeout;  /* run: seconds per worker statement (SET statement_timeout) */
	bool synchronous_commit;   /* false: batches commit with SET LOCAL synchronous_commit = off */
	char metrics_listen[CONFIG_ADDRESS_MAX]; /* "HOST:PORT" of the metrics endpoint; "" = off */
	/* Where dsn came from, for --print-config: "--dsn", "PASSPORTD_DSN", "PASSPORT_DATABASE_URL", ... */
	char dsn_origin[300];
};

enum config_type {
	CONFIG_INT,
	CONFIG_LONG,
	CONFIG_DOUBLE,
	CONFIG_BOOL,
	CONFIG_STRING,
	CONFIG_LOG_LEVEL,
	CONFIG_LOG_FORMAT,
	CONFIG_SYSTEMS,
	CONFIG_LISTEN_ADDRESS, /* "HOST:PORT", "[IPV6]:PORT", ":PORT" (every address) or "" (off) */
};

struct config_option {
	const char *name;         /* as written in the file; PASSPORTD_ + upper case in the environment */
	enum config_type type;
	size_t offset;            /* of the field in struct config */
	const char *default_value;
	bool reloadable;          /* SIGHUP may change it */
	double min, max;          /* numeric bounds */
	const char *help;
};

/*
 * Split a listen address "HOST:PORT", "[IPV6]:PORT" or ":PORT" into host ("" for every address;
 * without the brackets) and port (1 to 65535). Returns 0, or -1 with a reason in err.
 */
int config_parse_listen_address(const char *text, char *host, size_t hostlen, int *port, char *err, size_t errlen);

/* The table, terminated by an entry with a NULL name. */
extern const struct config_option config_options[];

/* The option of that name, or NULL. */
const struct config_option *config_find(const char *name);

/* The default of the option of that name, as written in the table (NULL for an unknown name). */
const char *config_default(const char *name);

/*
 * The workers a `workers = 0` (the default) stands for: one per online CPU of this machine, at
 * most CONFIG_AUTO_WORKERS_MAX. More connections than the server's cores only add lock and
 * scheduling overhead (bench/README.md); on a small machine one per core keeps the server busy
 * while each worker's client side waits for its round trips.
 */
#define CONFIG_AUTO_WORKERS_MAX 4

/* Online CPUs of this machine (sysconf), at least 1 and at most cap. */
int config_machine_parallelism(int cap);

/* The number of drain workers config asks for: config->workers, or the derived count when it is 0. */
int config_workers(const struct config *config);

/* Fill every field with its default. Release with config_finish. */
void config_init(struct config *config);
void config_finish(struct config *config);
/* Deep copy (dst is finished first if it holds values). */
void config_copy(struct config *dst, const struct config *src);

/* Set one option from text. Returns 0, or -1 with a reason in err. */
int config_set(struct config *config, const char *name, const char *value, char *err, size_t errlen);

/*
 * Read a file of "name = value" lines ('#' starts a comment). A missing file is an error only
 * when required. Returns 0, or -1 with "path:line: reason" in err.
 */
int config_read_file(struct config *config, const char *path, bool required, char *err, size_t errlen);

/* Apply PASSPORTD_<NAME> variables. Returns 0, or -1 with a reason. */
int config_read_environment(struct config *config, char *err, size_t errlen);

/* Where the configuration comes from, kept so that SIGHUP can read it again the same way. */
struct config_sources {
	const char *path;           /* config file */
	bool path_required;         /* given with --config: must exist */
	int n_overrides;            /* command-line values, applied last */
	const char *override_names[32];
	const char *override_values[32];
};

/*
 * Read the file, the environment and the overrides of sources, in that order, over what config
 * holds (its defaults after config_init). Returns 0, or -1 with the first reason in err; config
 * may then hold some of the new values, so a reload loads into a fresh config.
 *
 * The connection string, from the highest precedence down: --dsn, PASSPORTD_DSN,
 * PASSPORT_DATABASE_URL (the environment beats the file, as for every option), the file's dsn,
 * else libpq's own environment (PGHOST, PGSERVICE, ...). config->dsn_origin says which.
 */
int config_load(struct config *config, const struct config_sources *sources, char *err, size_t errlen);

/*
 * Apply a freshly loaded configuration to the running one, as SIGHUP does: every reloadable
 * option of the table takes its value from fresh; every other option keeps its start-up value,
 * and each one whose value differs in fresh (compared as printed, so without the DSN's password)
 * is logged as a warning "reload: NAME cannot change while running (restart to apply)".
 * Returns the number of such ignored changes. fresh is not modified and still belongs to the
 * caller.
 */
int config_apply_reload(struct config *running, const struct config *fresh);

/*
 * Print "name = value" for every option; the DSN is shown without its password, followed by a
 * comment line saying where it comes from ("# dsn from PASSPORT_DATABASE_URL").
 */
void config_print(const struct config *config, FILE *out);

struct batch_config;

/*
 * The batch settings (batch size, systems, payload limit, attempts, retry delays) of a config.
 * Every field of batch is set: those the table holds from config, the rest to zero (no shared
 * target cache), so the table stays the one place that knows a default.
 */
void config_to_batch(const struct config *config, struct batch_config *batch);

/* The value of an option as text, for printing (password removed from the DSN). Caller frees. */
char *config_value_text(const struct config *config, const struct config_option *option);

#endif
