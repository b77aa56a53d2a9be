/* entity_dna: `passport-migrate entity-dna` seeds artist target vectors from the artists' own DNA. */
#include "db.h"
#include "migrate.h"
#include "vector_type.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * One statement, so the copy is atomic and the vectors never leave the server (entity_dna.embedding
 * has the type of media_ids.profile_embedding, vector(1536) or real[], so no cast is needed).
 *
 * Which DNA row: among the artist's own media_ids rows (media_ids.user_uuid =
 * artist_profiles.user_id) with a non-NULL embedding, the 'artist' role row, else the 'fan' row,
 * else the oldest remaining one. An artist without any such row gets nothing.
 *
 * $1 is --refresh. Without it an existing vector is kept and only a missing row or a NULL
 * embedding is written; with it every artist vector is overwritten. Rows the conflict clause
 * skips are not counted, so the command tag counts exactly the vectors written.
 */
static const char ENTITY_DNA_SQL[] =
	"INSERT INTO entity_dna AS existing (entity_type, entity_id, embedding, updated_at)\n"
	"SELECT DISTINCT ON (a.id) 'artist', a.id, m.profile_embedding, now()\n"
	"  FROM artist_profiles a\n"
	"  JOIN media_ids m ON m.user_uuid = a.user_id\n"
	" WHERE m.profile_embedding IS NOT NULL\n"
	" ORDER BY a.id, coalesce(m.role::text = 'artist', false) DESC,\n"
	"          coalesce(m.role::text = 'fan', false) DESC,\n"
	"          m.created_at NULLS LAST, m.id\n"
	"ON CONFLICT (entity_type, entity_id) DO UPDATE\n"
	"   SET embedding = EXCLUDED.embedding, updated_at = now()\n"
	" WHERE $1::boolean OR existing.embedding IS NULL";

static void entity_dna_usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " entity-dna [--refresh] [--dsn DSN]\n"
	      "\n"
	      "Seed entity_dna('artist', id) for every artist from the profile_embedding of the\n"
	      "artist's own media_ids row (the 'artist' role row when it has one, else the 'fan' row).\n"
	      "Artists that already have a vector keep it unless --refresh is given. Run it before a\n"
	      "drain and on a schedule: passportd reads only entity_dna for targets.\n"
	      "\n"
	      "Options:\n"
	      "  -r, --refresh      overwrite existing artist vectors\n"
	      "      --dsn DSN      connection string (default: $PASSPORT_DATABASE_URL, then the\n"
	      "                     PG* environment variables)\n"
	      "  -h, --help         show this help\n",
	      out);
}

int entity_dna_main(struct migrate_globals *globals, int argc, char **argv)
{
	static const struct option options[] = {
		{"refresh", no_argument, NULL, 'r'},
		{"dsn", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool refresh = false;
	const char *params[1];
	struct db_error error;
	PGresult *result;
	PGconn *conn;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "rh", options, NULL)) != -1) {
		switch (opt) {
		case 'r':
			refresh = true;
			break;
		case 'd':
			if (migrate_take_dsn(globals, optarg) < 0)
				return MIGRATE_EXIT_FAILURE;
			break;
		case 'h':
			entity_dna_usage(stdout);
			return MIGRATE_EXIT_OK;
		default:
			entity_dna_usage(stderr);
			return MIGRATE_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		migrate_error("entity-dna: unexpected argument '%s'", argv[optind]);
		entity_dna_usage(stderr);
		return MIGRATE_EXIT_USAGE;
	}

	conn = migrate_connect(globals);
	if (!conn)
		return MIGRATE_EXIT_FAILURE;

	/* Vectors are copied as they are: both columns must have one type, vector(1536) or real[]. */
	{
		struct vector_type type;

		if (vector_type_inspect(conn, &type, &error) < 0) {
			migrate_error("entity-dna: %s", error.message);
			PQfinish(conn);
			return MIGRATE_EXIT_FAILURE;
		}
	}
	params[0] = refresh ? "true" : "false";
	result = db_query(conn, ENTITY_DNA_SQL, 1, params, NULL, NULL, 0, &error);
	if (!result) {
		migrate_error("entity-dna: %s", error.message);
		if (strcmp(error.sqlstate, "42P01") == 0) /* undefined_table */
			fprintf(stderr, "  hint: run `" MIGRATE_PROGRAM " schema` first\n");
		PQfinish(conn);
		return MIGRATE_EXIT_FAILURE;
	}
	printf("entity-dna: wrote %s artist vectors\n", PQcmdTuples(result));
	PQclear(result);
	PQfinish(conn);
	return MIGRATE_EXIT_OK;
}
