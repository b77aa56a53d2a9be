/* inspect_user: which user `passportd inspect USER` means: a user id as given, or the users an email matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "inspect.h"
#include "payload.h"

/* Longest email accepted (RFC 5321: 64 + 1 + 255). */
#define EMAIL_MAX 320

/*
 * The tables that hold emails: auth.users (Supabase's users) and public.profiles where it exists.
 * Table and column names in the lookups are these literals, never text from the database or the
 * command line.
 */
struct email_source {
	const char *table;    /* "auth.users" or "public.profiles" */
	const char *id_column; /* the column holding the user id: "id" or "user_id" */
	bool present;         /* the table exists with an email and a uuid id column */
	bool readable;        /* the current role may read both columns */
};

/*
 * The email tables as the catalog describes them; no lookup of the tables themselves, so a role
 * without USAGE on schema auth gets an answer, not an error. Result columns, one row per table:
 * the table ("auth.users" / "public.profiles"), its user id column (user_id preferred, else id;
 * of type uuid), and whether the current role may read that column and email.
 */
static const char sql_email_sources[] =
	"SELECT n.nspname || '.' || c.relname, idcol.attname,"
	" has_schema_privilege(n.oid, 'USAGE') AND has_column_privilege(c.oid, idcol.attname, 'SELECT')"
	"   AND has_column_privilege(c.oid, 'email', 'SELECT')"
	" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	" CROSS JOIN LATERAL (SELECT a.attname::text AS attname FROM pg_attribute a"
	"   WHERE a.attrelid = c.oid AND a.attname IN ('user_id', 'id') AND a.atttypid = 'uuid'::regtype"
	"   AND NOT a.attisdropped ORDER BY a.attname = 'user_id' DESC LIMIT 1) idcol"
	" WHERE (n.nspname, c.relname) IN (('auth', 'users'), ('public', 'profiles'))"
	" AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	" AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'email'"
	"   AND NOT a.attisdropped)";
enum { SOURCE_TABLE, SOURCE_ID_COLUMN, SOURCE_READABLE };

void inspect_printable(const char *text, char *out, size_t size)
{
	size_t n = 0, length = strlen(text);

	if (size == 0)
		return;
	for (; n < length && n + 1 < size; n++) {
		unsigned char c = (unsigned char)text[n];
		out[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[n] = '\0';
	if (n < length && size > 4)
		memcpy(out + size - 4, "...", 4);
}

static int load_sources(PGconn *conn, struct email_source sources[2], struct db_error *error)
{
	PGresult *res = db_query(conn, sql_email_sources, 0, NULL, NULL, NULL, 0, error);

	if (!res)
		return -1;
	sources[0] = (struct email_source){.table = "auth.users", .id_column = "id"};
	sources[1] = (struct email_source){.table = "public.profiles", .id_column = "id"};
	for (int i = 0; i < PQntuples(res); i++) {
		struct email_source *s = strcmp(PQgetvalue(res, i, SOURCE_TABLE), "auth.users") == 0 ? &sources[0]
												   : &sources[1];
		s->present = true;
		s->id_column = strcmp(PQgetvalue(res, i, SOURCE_ID_COLUMN), "user_id") == 0 ? "user_id" : "id";
		s->readable = strcmp(PQgetvalue(res, i, SOURCE_READABLE), "t") == 0;
	}
	PQclear(res);
	return 0;
}

/*
 * Look text up in one source: by email ($1 the email, matched as given or lower-cased, which is
 * how Supabase stores it) or by user id ($1 the canonical UUID). Appends {"user_id", "email",
 * "source"} to matches. Returns 0 or -1 with error set.
 */
static int lookup(PGconn *conn, const struct email_source *source, const char *text, bool by_id, cJSON *matches,
		  struct db_error *error)
{
	char sql[512];
	const char *values[1] = {text};
	PGresult *res;

	if (by_id)
		snprintf(sql, sizeof(sql),
			 "SELECT %s::text, email::text FROM %s WHERE %s = $1::uuid ORDER BY 2 LIMIT %d",
			 source->id_column, source->table, source->id_column, INSPECT_MAX_MATCHES);
	else
		snprintf(sql, sizeof(sql),
			 "SELECT %s::text, email::text FROM %s WHERE email = $1 OR email = lower($1)"
			 " ORDER BY 1, 2 LIMIT %d",
			 source->id_column, source->table, INSPECT_MAX_MATCHES);
	res = db_query(conn, sql, 1, values, NULL, NULL, 0, error);
	if (!res) {
		db_error_prefix(error, "%s", source->table);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *match;

		if (PQgetisnull(res, i, 0))
			continue;
		match = cJSON_CreateObject();
		cJSON_AddStringToObject(match, "user_id", PQgetvalue(res, i, 0));
		if (PQgetisnull(res, i, 1))
			cJSON_AddNullToObject(match, "email");
		else
			cJSON_AddStringToObject(match, "email", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(match, "source", strcmp(source->table, "auth.users") == 0 ? "auth.users" : "profiles");
		cJSON_AddItemToArray(matches, match);
	}
	PQclear(res);
	return 0;
}

/* The number of distinct user ids among matches; the first one goes to user_id. */
static int distinct_users(const cJSON *matches, char user_id[37])
{
	int n = 0;
	const cJSON *match, *earlier;

	cJSON_ArrayForEach(match, matches)
	{
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(match, "user_id"));
		bool seen = false;

		cJSON_ArrayForEach(earlier, matches)
		{
			if (earlier == match)
				break;
			if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(earlier, "user_id")), id) == 0)
				seen = true;
		}
		if (!seen && n++ == 0)
			snprintf(user_id, 37, "%s", id);
	}
	return n;
}

int inspect_resolve_user(PGconn *conn, const char *text, cJSON *report, char user_id[37])
{
	struct email_source sources[2];
	struct db_error error;
	cJSON *matches = cJSON_AddArrayToObject(report, "matches");
	uuid_text canonical;
	char shown[80];
	bool by_id = uuid_canonical(text, canonical) == 0;
	int readable = 0;

	inspect_printable(text, shown, sizeof(shown));
	if (!by_id && (!strchr(text, '@') || strlen(text) > EMAIL_MAX)) {
		fprintf(stderr, "passportd: inspect: '%s' is neither a user id (UUID) nor an email\n", shown);
		return -1;
	}
	if (load_sources(conn, sources, &error) < 0) {
		fprintf(stderr, "passportd: inspect: %s\n", error.message);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (!sources[i].present)
			continue;
		if (!sources[i].readable) {
			/* An id needs no email table; the emails are only shown. */
			if (!by_id)
				fprintf(stderr,
					"passportd: inspect: %s is not readable by this role; an administrator can run"
					" GRANT SELECT (%s, email) ON %s TO <role> (and GRANT USAGE on its schema)\n",
					sources[i].table, sources[i].id_column, sources[i].table);
			continue;
		}
		readable++;
		if (lookup(conn, &sources[i], by_id ? canonical : text, by_id, matches, &error) < 0) {
			fprintf(stderr, "passportd: inspect: %s\n", error.message);
			return -1;
		}
	}
	if (by_id) {
		memcpy(user_id, canonical, sizeof(canonical));
		return 1;
	}
	if (readable == 0) {
		fprintf(stderr, "passportd: inspect: cannot look up '%s': %s; give the user id instead\n", shown,
			sources[0].present || sources[1].present ? "no email table is readable by this role"
								 : "there is no email table (auth.users, profiles)");
		return -1;
	}
	return distinct_users(matches, user_id) == 1 ? 1 : 0;
}
