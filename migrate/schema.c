/* schema: `passport-migrate schema` applies the numbered sql/ migrations once each, in order. */
#include "db.h"
#include "migrate.h"
#include "migrations.h"
#include "schema_steps.h"
#include "vector_type.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Why an advisory lock: two deployments may run `schema` at the same moment. Without it both
 * would see a migration as missing and both would apply it (or fail on the record's primary
 * key). The key is the ASCII bytes of "passport" read as a big-endian bigint.
 */
#define SCHEMA_LOCK_KEY "8097880544633647732"

#define SCHEMA_TABLE_SQL                                                                    \
	"CREATE TABLE IF NOT EXISTS passport_schema_migrations ("                           \
	" version    integer PRIMARY KEY,"                                                  \
	" name       text NOT NULL,"                                                        \
	" checksum   text NOT NULL,"                                                        \
	" applied_at timestamptz NOT NULL DEFAULT now())"

enum migration_state {
	STATE_PENDING,    /* not recorded: apply it */
	STATE_UP_TO_DATE, /* recorded with the same checksum */
	STATE_CHANGED,    /* recorded with another checksum: refuse */
};

struct planned_migration {
	const struct migration *migration;
	enum migration_state state;
	char checksum[65];
	char recorded_checksum[65];
	char recorded_name[256];
};

static void schema_usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " schema [--dry-run] [--sql-dir DIR] [--dsn DSN]\n"
	      "\n"
	      "Apply the project's SQL migrations (sql/NNN_*.sql, embedded in this program) in order,\n"
	      "recording each in passport_schema_migrations. Migrations already recorded with the same\n"
	      "checksum are skipped; an applied migration whose file has changed since is refused, and\n"
	      "then nothing is applied. Safe on a live database: ALTER TABLE in short transactions of\n"
	      "its own under a 500 ms lock_timeout, retried with backoff; indexes built CONCURRENTLY\n"
	      "(an INVALID one left by an interrupted run is rebuilt). Needs a direct connection (or a\n"
	      "session pooler): it refuses a transaction pooler.\n"
	      "\n"
	      "Options:\n"
	      "  -n, --dry-run      list what would be applied, skipped or refused; change nothing\n"
	      "      --sql-dir DIR  read the migrations from DIR instead of the embedded copies\n"
	      "      --dsn DSN      connection string (default: $PASSPORT_DATABASE_URL, then the\n"
	      "                     PG* environment variables)\n"
	      "  -h, --help         show this help\n",
	      out);
}

/* sha256 of the text, hex, computed by the server: the same function for every client. */
static int compute_checksum(PGconn *conn, const struct migration *m, char out[65])
{
	const char *params[1] = {m->text};
	struct db_error error;
	PGresult *result = db_query(conn, "SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", 1, params,
				    NULL, NULL, 0, &error);

	if (!result) {
		migrate_error("checksum of %s: %s", m->name, error.message);
		return -1;
	}
	if (PQntuples(result) != 1 || strlen(PQgetvalue(result, 0, 0)) != 64) {
		migrate_error("checksum of %s: %s", m->name, PQresStatus(PQresultStatus(result)));
		PQclear(result);
		return -1;
	}
	memcpy(out, PQgetvalue(result, 0, 0), 65);
	PQclear(result);
	return 0;
}

/* Whether passport_schema_migrations exists (in the search path); -1 on error. */
static int record_table_exists(PGconn *conn)
{
	struct db_error error;
	bool exists;

	if (db_query_bool(conn, "SELECT to_regclass('passport_schema_migrations') IS NOT NULL", &exists, &error) < 0) {
		migrate_error("looking for passport_schema_migrations: %s", error.message);
		return -1;
	}
	return exists;
}

/*
 * Compare every migration with its record. Versions recorded in the database but unknown to
 * this program (a newer release applied them) are reported, not treated as errors.
 */
static int plan_migrations(PGconn *conn, bool table_exists, const struct migration_list *list,
			   struct planned_migration *plan)
{
	PGresult *records = NULL;
	struct db_error error;
	int rows = 0;

	if (table_exists) {
		records = db_query(conn, "SELECT version, name, checksum FROM passport_schema_migrations ORDER BY version",
				   0, NULL, NULL, NULL, 0, &error);
		if (!records) {
			migrate_error("reading passport_schema_migrations: %s", error.message);
			return -1;
		}
		rows = PQntuples(records);
	}

	for (size_t i = 0; i < list->count; i++) {
		struct planned_migration *p = &plan[i];

		memset(p, 0, sizeof *p);
		p->migration = &list->items[i];
		p->state = STATE_PENDING;
		if (compute_checksum(conn, p->migration, p->checksum) < 0) {
			PQclear(records);
			return -1;
		}
		for (int r = 0; r < rows; r++) {
			if (atoi(PQgetvalue(records, r, 0)) != p->migration->version)
				continue;
			snprintf(p->recorded_checksum, sizeof p->recorded_checksum, "%s",
				 PQgetvalue(records, r, 2));
			snprintf(p->recorded_name, sizeof p->recorded_name, "%s",
				 PQgetvalue(records, r, 1));
			p->state = strcmp(p->recorded_checksum, p->checksum) == 0 ? STATE_UP_TO_DATE
										   : STATE_CHANGED;
		}
	}

	for (int r = 0; r < rows; r++) {
		int version = atoi(PQgetvalue(records, r, 0));
		bool known = false;

		for (size_t i = 0; i < list->count; i++)
			known = known || list->items[i].version == version;
		if (!known)
			printf("  %03d  %-40s recorded by a newer release (unknown here)\n", version,
			       PQgetvalue(records, r, 1));
	}
	PQclear(records);
	return 0;
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1000.0 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/*
 * The vector columns' type before anything is applied (when media_ids exists): vector(1536) in any
 * schema or real[], and entity_dna.embedding, if it exists already, of the same type. -1 after
 * printing why not.
 */
static int check_vector_columns(PGconn *conn, struct vector_type *type)
{
	struct db_error error;
	bool has_media_ids;

	memset(type, 0, sizeof *type);
	if (db_query_bool(conn, "SELECT to_regclass('media_ids') IS NOT NULL", &has_media_ids, &error) < 0) {
		migrate_error("looking for media_ids: %s", error.message);
		return -1;
	}
	if (has_media_ids && vector_type_inspect(conn, type, &error) < 0) {
		migrate_error("%s", error.message);
		return -1;
	}
	return 0;
}

/*
 * Apply one migration in its online-safe steps (schema_steps.h), then record it in a transaction
 * of its own. Reports on failure; the steps before a failed one stay applied, and the next run,
 * finding the migration unrecorded, applies it again (migrations are idempotent).
 */
static int apply_migration(PGconn *conn, const struct planned_migration *p, const struct vector_type *type)
{
	const struct migration *m = p->migration;
	char version[16];
	const char *params[3] = {version, m->name, p->checksum};
	struct db_error error;
	PGresult *result;

	if (schema_steps_apply(conn, m, type) < 0)
		return -1;
	snprintf(version, sizeof version, "%d", m->version);
	if (migrate_begin(conn, false, MIGRATE_TRANSACTION_SETTINGS_SQL, &error) < 0) {
		migrate_error("recording %s: %s", m->name, error.message);
		return -1;
	}
	result = db_query(conn, "INSERT INTO passport_schema_migrations (version, name, checksum) VALUES ($1::integer, $2, $3)",
			  3, params, NULL, NULL, 0, &error);
	if (!result) {
		db_rollback(conn);
		migrate_error("recording %s: %s", m->name, error.message);
		return -1;
	}
	PQclear(result);
	if (migrate_commit(conn, &error) < 0) {
		migrate_error("recording %s: %s", m->name, error.message);
		return -1;
	}
	return 0;
}

/*
 * Take the lock, telling the operator when another run holds it. Why polling, not
 * pg_advisory_lock: the holder builds indexes CONCURRENTLY, which waits for every transaction
 * open at the time, and a statement waiting for the lock is such a transaction: the two would
 * deadlock. A try every half second is a transaction of a moment.
 */
static int take_schema_lock(PGconn *conn)
{
	struct db_error error;
	bool said = false;

	for (;;) {
		bool locked;
		struct timespec half_second = {0, 500000000L};

		if (db_query_bool(conn, "SELECT pg_try_advisory_lock(" SCHEMA_LOCK_KEY ")", &locked, &error) < 0) {
			migrate_error("taking the schema lock: %s", error.message);
			return -1;
		}
		if (locked)
			return 0;
		if (!said) {
			printf("waiting for another `" MIGRATE_PROGRAM " schema` run to finish...\n");
			fflush(stdout);
			said = true;
		}
		nanosleep(&half_second, NULL);
	}
}

static int run_schema(PGconn *conn, const struct migration_list *list, bool dry_run)
{
	struct planned_migration *plan = calloc(list->count, sizeof *plan);
	size_t applied = 0, up_to_date = 0, pending = 0, changed = 0;
	struct vector_type type;
	int table_exists;
	int status = MIGRATE_EXIT_FAILURE;

	if (!plan) {
		migrate_error("out of memory");
		return MIGRATE_EXIT_FAILURE;
	}
	if (!dry_run) {
		struct db_error error;

		if (take_schema_lock(conn) < 0)
			goto out;
		if (db_command(conn, SCHEMA_TABLE_SQL, &error) < 0) {
			migrate_error("creating passport_schema_migrations: %s", error.message);
			goto out;
		}
		table_exists = 1;
	} else {
		table_exists = record_table_exists(conn);
		if (table_exists < 0)
			goto out;
	}
	if (plan_migrations(conn, table_exists, list, plan) < 0 || check_vector_columns(conn, &type) < 0)
		goto out;

	for (size_t i = 0; i < list->count; i++) {
		pending += plan[i].state == STATE_PENDING;
		up_to_date += plan[i].state == STATE_UP_TO_DATE;
		changed += plan[i].state == STATE_CHANGED;
	}

	/* A changed file is refused before anything is applied, so the database is never left
	 * with later migrations on top of an earlier one that no longer matches its file. */
	if (changed > 0 || dry_run) {
		for (size_t i = 0; i < list->count; i++) {
			const struct planned_migration *p = &plan[i];
			const char *what = p->state == STATE_PENDING	 ? (dry_run ? "would apply" : "pending")
					   : p->state == STATE_UP_TO_DATE ? "up to date"
									  : "CHANGED since it was applied";
			printf("  %03d  %-40s %s\n", p->migration->version, p->migration->name, what);
		}
		for (size_t i = 0; i < list->count; i++) {
			const struct planned_migration *p = &plan[i];
			if (p->state != STATE_CHANGED)
				continue;
			migrate_error("refusing: %s was changed after it was applied (recorded checksum "
				      "%.12s..., file now %.12s...). Restore the file, or put the change "
				      "in a new migration.",
				      p->migration->name, p->recorded_checksum, p->checksum);
		}
		if (changed > 0) {
			printf("schema: refused, %zu changed migration%s; nothing applied\n", changed,
			       changed == 1 ? "" : "s");
			goto out;
		}
		printf("schema (dry run): %zu to apply, %zu up to date; nothing changed\n", pending,
		       up_to_date);
		status = MIGRATE_EXIT_OK;
		goto out;
	}

	for (size_t i = 0; i < list->count; i++) {
		const struct planned_migration *p = &plan[i];
		struct timespec start;

		if (p->state == STATE_UP_TO_DATE) {
			printf("  %03d  %-40s up to date\n", p->migration->version, p->migration->name);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &start);
		if (apply_migration(conn, p, &type) < 0) {
			printf("schema: %s failed; %zu applied before it, nothing after it\n",
			       p->migration->name, applied);
			goto out;
		}
		applied++;
		printf("  %03d  %-40s applied (%.0f ms)\n", p->migration->version, p->migration->name,
		       elapsed_ms(&start));
		fflush(stdout);
	}
	/* entity_dna exists now: it must have the type of profile_embedding (a table kept from before may not). */
	if (check_vector_columns(conn, &type) < 0) {
		printf("schema: %zu applied, %zu up to date, but the vector columns do not match\n", applied, up_to_date);
		goto out;
	}
	printf("schema: %zu applied, %zu up to date\n", applied, up_to_date);
	status = MIGRATE_EXIT_OK;

out:
	fflush(stdout);
	free(plan);
	return status;
}

int schema_main(struct migrate_globals *globals, int argc, char **argv)
{
	static const struct option options[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"sql-dir", required_argument, NULL, 'S'},
		{"dsn", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct migration_list list;
	const char *sql_dir = NULL;
	bool dry_run = false;
	char err[1024];
	PGconn *conn;
	int opt, status;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "nh", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			dry_run = true;
			break;
		case 'S':
			sql_dir = optarg;
			break;
		case 'd':
			if (migrate_take_dsn(globals, optarg) < 0)
				return MIGRATE_EXIT_FAILURE;
			break;
		case 'h':
			schema_usage(stdout);
			return MIGRATE_EXIT_OK;
		default:
			schema_usage(stderr);
			return MIGRATE_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		migrate_error("schema: unexpected argument '%s'", argv[optind]);
		schema_usage(stderr);
		return MIGRATE_EXIT_USAGE;
	}

	if (sql_dir) {
		if (migration_list_init_dir(&list, sql_dir, err, sizeof err) < 0) {
			migrate_error("%s", err);
			return MIGRATE_EXIT_FAILURE;
		}
	} else {
		migration_list_init_embedded(&list);
	}

	conn = migrate_connect(globals);
	if (!conn) {
		migration_list_finish(&list);
		return MIGRATE_EXIT_FAILURE;
	}
	/* The schema lock is a session lock (a dry run takes none). */
	if (!dry_run && migrate_require_session(conn, globals, "schema") < 0)
		status = MIGRATE_EXIT_FAILURE;
	else
		status = run_schema(conn, &list, dry_run);
	PQfinish(conn); /* also releases the advisory lock */
	migration_list_finish(&list);
	return status;
}
