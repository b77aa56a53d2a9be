/* schema_steps: a migration file cut into online-safe steps, and the steps applied with lock timeouts and retries. */
#include "schema_steps.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "migrate.h"
#include "migrations.h"
#include "vector_type.h"

/* ---- cutting the file (pure) ----------------------------------------------------------------- */

/* The end of the comment, quoted text or dollar-quoted body that starts at p, or p when none does. */
static const char *skip_quoted(const char *p)
{
	if (p[0] == '-' && p[1] == '-') {
		while (*p && *p != '\n')
			p++;
		return p;
	}
	if (p[0] == '/' && p[1] == '*') {
		int depth = 0;
		do {
			if (p[0] == '/' && p[1] == '*') {
				depth++;
				p += 2;
			} else if (p[0] == '*' && p[1] == '/') {
				depth--;
				p += 2;
			} else {
				p++;
			}
		} while (*p && depth > 0);
		return p;
	}
	if (*p == '\'' || *p == '"') {
		char quote = *p++;
		while (*p && *p != quote)
			p++;
		return *p ? p + 1 : p;
	}
	if (*p == '$') {
		const char *tag_end = p + 1;
		while (isalnum((unsigned char)*tag_end) || *tag_end == '_')
			tag_end++;
		if (*tag_end == '$' && !isdigit((unsigned char)p[1])) {
			size_t tag_len = (size_t)(tag_end - p) + 1;
			const char *close;
			for (close = tag_end + 1; *close; close++)
				if (strncmp(close, p, tag_len) == 0)
					return close + tag_len;
			return close;
		}
	}
	return p;
}

/* Skip blanks and comments. */
static const char *skip_blank(const char *p)
{
	for (;;) {
		const char *q;
		while (isspace((unsigned char)*p))
			p++;
		if (!((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')))
			return p;
		q = skip_quoted(p);
		if (q == p)
			return p;
		p = q;
	}
}

/* Whether the word at p is keyword (any case), followed by a non-word character. */
static bool is_word(const char *p, const char *keyword)
{
	size_t n = strlen(keyword);
	return strncasecmp(p, keyword, n) == 0 && !(isalnum((unsigned char)p[n]) || p[n] == '_');
}

/* Past the word (an identifier, maybe "quoted", maybe schema.qualified) at p, and the blanks after it. */
static const char *next_word(const char *p, char *copy, size_t size)
{
	const char *start = p;

	while (*p && !isspace((unsigned char)*p) && *p != '(' && *p != ';') {
		if (*p == '"')
			p = skip_quoted(p);
		else
			p++;
	}
	if (copy)
		snprintf(copy, size, "%.*s", (int)(p - start), start);
	return skip_blank(p);
}

/* Classify the statement that starts at p (after blanks). */
static enum schema_step_kind classify(const char *text, const char *p, struct schema_step *step)
{
	const char *q;

	if (is_word(p, "ALTER") && is_word(skip_blank(p + 5), "TABLE"))
		return SCHEMA_STEP_ALTER;
	/* DROP INDEX takes an exclusive lock on the table; DROP INDEX CONCURRENTLY does not. */
	if (is_word(p, "DROP") && is_word(q = skip_blank(p + 4), "INDEX")) {
		step->concurrently_at = (size_t)(q + 5 - text);
		if (is_word(skip_blank(q + 5), "CONCURRENTLY"))
			step->concurrently_at = 0;
		return SCHEMA_STEP_INDEX;
	}
	if (!is_word(p, "CREATE"))
		return SCHEMA_STEP_TRANSACTION;
	q = skip_blank(p + 6);
	if (is_word(q, "UNIQUE"))
		q = skip_blank(q + 6);
	if (!is_word(q, "INDEX"))
		return SCHEMA_STEP_TRANSACTION;
	q += 5;
	step->concurrently_at = (size_t)(q - text);
	q = skip_blank(q);
	if (is_word(q, "CONCURRENTLY")) {
		step->concurrently_at = 0;
		q = skip_blank(q + 12);
	}
	if (is_word(q, "IF") && is_word(skip_blank(q + 2), "NOT"))
		q = next_word(next_word(next_word(q, NULL, 0), NULL, 0), NULL, 0); /* IF NOT EXISTS */
	if (!is_word(q, "ON"))
		next_word(q, step->index_name, sizeof step->index_name);
	return SCHEMA_STEP_INDEX;
}

int schema_steps_split(const char *text, struct schema_step **steps)
{
	size_t capacity = 8;
	int n = 0;
	const char *p = text;
	struct schema_step *out = calloc(capacity, sizeof *out);

	if (!out)
		return -1;
	for (;;) {
		const char *start = skip_blank(p), *end = start;
		struct schema_step step = {0};

		if (!*start)
			break;
		while (*end && *end != ';') {
			const char *q = skip_quoted(end);
			end = q == end ? end + 1 : q;
		}
		if (*end == ';')
			end++;
		step.kind = classify(text, start, &step);
		step.start = (size_t)(p - text); /* the step keeps the comments before its statement */
		step.end = (size_t)(end - text);
		p = end;
		if (step.kind == SCHEMA_STEP_TRANSACTION && n > 0 && out[n - 1].kind == SCHEMA_STEP_TRANSACTION) {
			out[n - 1].end = step.end;
			continue;
		}
		if ((size_t)n == capacity) {
			struct schema_step *grown = realloc(out, 2 * capacity * sizeof *out);
			if (!grown) {
				free(out);
				return -1;
			}
			out = grown;
			capacity *= 2;
		}
		out[n++] = step;
	}
	*steps = out;
	return n;
}

/* ---- applying the steps ----------------------------------------------------------------------- */

/* The 1-based line of the character at 1-based position of text (PostgreSQL counts characters). */
static int line_of_position(const char *text, long position)
{
	int line = 1;
	long characters = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p & 0xC0) != 0x80 && ++characters >= position)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

/*
 * Print why a step failed: the server's message, the file line and any PL/pgSQL context.
 * sent is the text the server saw, which starts at byte offset of the file.
 */
static void report_failure(const struct migration *m, size_t offset, const char *sent, const PGresult *result,
			   const struct db_error *error)
{
	const char *position = result ? PQresultErrorField(result, PG_DIAG_STATEMENT_POSITION) : NULL;
	const char *context = result ? PQresultErrorField(result, PG_DIAG_CONTEXT) : NULL;
	const char *primary = result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int lines_before = 0;

	for (size_t i = 0; i < offset && m->text[i]; i++)
		lines_before += m->text[i] == '\n';
	if (primary && position)
		migrate_error("%s failed at line %d: %s", m->name, lines_before + line_of_position(sent, atol(position)),
			      primary);
	else if (primary)
		migrate_error("%s failed: %s", m->name, primary);
	else
		migrate_error("%s failed: %s", m->name, error->message);
	if (context)
		fprintf(stderr, "  context: %s\n", context);
}

static void pause_seconds(double seconds)
{
	struct timespec step = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&step, NULL);
}

/* Lock not granted in time, or a deadlock: the step is tried again after a pause. */
static bool lock_refused(const struct db_error *error)
{
	return strcmp(error->sqlstate, "55P03") == 0 || strcmp(error->sqlstate, "40P01") == 0;
}

/*
 * BEGIN, the step's settings (lock_timeout; pgvector's schema on the search path where it is
 * off it: Supabase installs it in `extensions`, and the files say `vector(1536)`), then sql.
 */
static int run_in_transaction(PGconn *conn, const char *sql, const struct vector_type *type, PGresult **result,
			      struct db_error *error)
{
	const char *params[1] = {type->schema_off_path};
	PGresult *res;

	*result = NULL;
	if (migrate_begin(conn, false,
			  "SELECT set_config('lock_timeout', '" SCHEMA_LOCK_TIMEOUT "', true)",
			  error) < 0)
		return -1;
	if (type->schema_off_path[0]) {
		res = db_query(conn,
			       "SELECT set_config('search_path', current_setting('search_path') || ', ' || quote_ident($1), true)",
			       1, params, NULL, NULL, 0, error);
		PQclear(res);
		if (!res)
			goto rollback;
	}
	if (db_run_script(conn, sql, result, error) < 0)
		goto rollback;
	if (db_command(conn, "COMMIT", error) < 0)
		goto rollback;
	return 0;
rollback:
	db_rollback(conn);
	return -1;
}

/*
 * Before CREATE INDEX CONCURRENTLY of name: an index of that name left INVALID by an interrupted
 * run would make IF NOT EXISTS skip the build. Wait while a build of it is still in progress (the
 * backend of a killed run goes on until it notices); then drop what is left INVALID.
 */
static int recover_invalid_index(PGconn *conn, const struct migration *m, const char *name)
{
	const char *params[1] = {name};
	struct db_error error;
	bool said = false;

	for (;;) {
		PGresult *res = db_query(conn,
					 "SELECT i.indexrelid::regclass::text, i.indisvalid,"
					 " EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)"
					 " FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
					 1, params, NULL, NULL, 0, &error);
		char drop[600];

		if (!res) {
			migrate_error("%s: looking for index %s: %s", m->name, name, error.message);
			return -1;
		}
		if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
			PQclear(res);
			return 0;
		}
		if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
			PQclear(res);
			if (!said)
				printf("  %03d  index %s is still being built by an earlier run; waiting for it\n", m->version, name);
			said = true;
			pause_seconds(1.0);
			continue;
		}
		printf("  %03d  index %s was left INVALID by an interrupted run: dropping it to build it again\n",
		       m->version, PQgetvalue(res, 0, 0));
		/* The name comes from the server (regclass output), quoted as needed. */
		snprintf(drop, sizeof drop, "DROP INDEX CONCURRENTLY IF EXISTS %s", PQgetvalue(res, 0, 0));
		PQclear(res);
		if (db_command(conn, drop, &error) < 0) {
			migrate_error("%s: dropping the invalid index %s: %s", m->name, name, error.message);
			return -1;
		}
	}
}

/* One step, tried again while its lock is refused (with a growing, jittered pause). */
static int apply_step(PGconn *conn, const struct migration *m, const struct schema_step *step,
		      const struct vector_type *type)
{
	size_t length = step->end - step->start;
	char *sql = malloc(length + sizeof " CONCURRENTLY");
	double pause = 0.1;
	int rc = -1;

	if (!sql) {
		migrate_error("out of memory");
		return -1;
	}
	if (step->kind == SCHEMA_STEP_INDEX && step->concurrently_at) {
		size_t head = step->concurrently_at - step->start;
		memcpy(sql, m->text + step->start, head);
		memcpy(sql + head, " CONCURRENTLY", 13);
		memcpy(sql + head + 13, m->text + step->concurrently_at, length - head);
		sql[length + 13] = '\0';
	} else {
		memcpy(sql, m->text + step->start, length);
		sql[length] = '\0';
	}
	for (int attempt = 1;; attempt++) {
		struct db_error error;
		PGresult *result = NULL;
		int status;

		if (step->kind == SCHEMA_STEP_INDEX) {
			if (step->index_name[0] && recover_invalid_index(conn, m, step->index_name) < 0)
				break;
			/* Outside a transaction; the session's lock_timeout (the server's default) applies. */
			status = db_run_script(conn, sql, &result, &error);
		} else {
			status = run_in_transaction(conn, sql, type, &result, &error);
		}
		if (status == 0) {
			PQclear(result);
			rc = 0;
			break;
		}
		if (!lock_refused(&error) || attempt >= SCHEMA_LOCK_ATTEMPTS) {
			report_failure(m, step->start, sql, result, &error);
			if (lock_refused(&error))
				fprintf(stderr, "  hint: %d attempts could not take the lock; a long transaction holds it "
						"(see pg_stat_activity)\n",
					attempt);
			PQclear(result);
			break;
		}
		PQclear(result);
		if (attempt == 1 || attempt % 10 == 0)
			printf("  %03d  %s: %s; trying again (attempt %d of %d)\n", m->version, m->name,
			       strcmp(error.sqlstate, "40P01") == 0 ? "deadlock" : "lock not granted within " SCHEMA_LOCK_TIMEOUT,
			       attempt + 1, SCHEMA_LOCK_ATTEMPTS);
		pause_seconds(pause * (0.5 + (double)rand() / RAND_MAX));
		if (pause < 5.0)
			pause *= 2;
	}
	free(sql);
	return rc;
}

int schema_steps_apply(PGconn *conn, const struct migration *m, const struct vector_type *type)
{
	struct schema_step *steps = NULL;
	int n = schema_steps_split(m->text, &steps), rc = 0;

	if (n < 0) {
		migrate_error("out of memory");
		return -1;
	}
	for (int i = 0; i < n && rc == 0; i++)
		rc = apply_step(conn, m, &steps[i], type);
	free(steps);
	return rc;
}
