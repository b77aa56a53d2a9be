/* vector_type: the type of the DNA vector columns, found by OID and checked for dimension 1536. */
#include "vector_type.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

/*
 * One row per column found, profile_embedding first: the column as SQL names it, the type as SQL
 * writes it with and without the dimension, the dimension (atttypmod; -1 when none), whether it
 * is real[] (by OID), whether it is pgvector's vector (the type named vector that the extension
 * named vector owns: found in any schema), the type's schema when off the search path, and
 * whether the column has the same type and dimension as profile_embedding.
 */
#define INSPECT_SQL                                                                                \
	"WITH cols AS ("                                                                             \
	"  SELECT c.ord, c.rel, c.col, a.atttypid, a.atttypmod"                                      \
	"    FROM (VALUES (1, 'media_ids', 'profile_embedding'), (2, 'entity_dna', 'embedding')) c(ord, rel, col)" \
	"    JOIN pg_attribute a ON a.attrelid = to_regclass(c.rel) AND a.attname = c.col AND NOT a.attisdropped)" \
	" SELECT c.rel || '.' || c.col, format_type(c.atttypid, c.atttypmod), format_type(c.atttypid, NULL),"    \
	"        c.atttypmod, c.atttypid = 'real[]'::regtype,"                                        \
	"        t.typname = 'vector' AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid" \
	"          WHERE d.classid = 'pg_type'::regclass AND d.objid = c.atttypid"                     \
	"            AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND x.extname = 'vector')," \
	"        CASE WHEN pg_type_is_visible(c.atttypid) THEN '' ELSE n.nspname END,"                 \
	"        (c.atttypid, c.atttypmod) = (SELECT atttypid, atttypmod FROM cols WHERE ord = 1),"     \
	"        c.atttypid::int8"                                                                     \
	"   FROM cols c JOIN pg_type t ON t.oid = c.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace" \
	"  ORDER BY c.ord"

enum { COL_NAME, COL_TYPE, COL_TYPE_NAME, COL_TYPMOD, COL_IS_REAL_ARRAY, COL_IS_PGVECTOR, COL_SCHEMA, COL_SAME, COL_OID };

int vector_type_inspect(PGconn *conn, struct vector_type *out, struct db_error *error)
{
	PGresult *res = db_query(conn, INSPECT_SQL, 0, NULL, NULL, NULL, 0, error);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!res) {
		db_error_prefix(error, "reading the type of media_ids.profile_embedding");
		return -1;
	}
	if (PQntuples(res) < 1 || strcmp(PQgetvalue(res, 0, COL_NAME), "media_ids.profile_embedding") != 0) {
		db_error_set(error, NULL, "media_ids.profile_embedding is missing (expected vector(1536) or real[])");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, COL_IS_REAL_ARRAY), "t") == 0) {
		out->format = VEC_FORMAT_REAL_ARRAY;
	} else if (strcmp(PQgetvalue(res, 0, COL_IS_PGVECTOR), "t") == 0) {
		int dimension = atoi(PQgetvalue(res, 0, COL_TYPMOD));

		if (dimension != -1 && dimension != VEC_DIM) {
			db_error_set(error, NULL,
				     "media_ids.profile_embedding is %s, but a DNA vector has %d floats (four %d-float "
				     "domains): the column must be vector(%d)",
				     PQgetvalue(res, 0, COL_TYPE), VEC_DIM, VEC_DIM / VEC_DOMAINS, VEC_DIM);
			goto out;
		}
		out->format = VEC_FORMAT_PGVECTOR;
	} else {
		db_error_set(error, NULL, "media_ids.profile_embedding has type %s, expected vector(%d) (pgvector) or real[]",
			     PQgetvalue(res, 0, COL_TYPE), VEC_DIM);
		goto out;
	}
	out->oid = (uint32_t)strtoul(PQgetvalue(res, 0, COL_OID), NULL, 10);
	snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(res, 0, COL_TYPE_NAME));
	snprintf(out->schema_off_path, sizeof(out->schema_off_path), "%s", PQgetvalue(res, 0, COL_SCHEMA));
	if (PQntuples(res) > 1) {
		if (strcmp(PQgetvalue(res, 1, COL_SAME), "t") != 0) {
			db_error_set(error, NULL,
				     "entity_dna.embedding is %s but media_ids.profile_embedding is %s: target vectors "
				     "must have the type of the DNA they are mirrored into",
				     PQgetvalue(res, 1, COL_TYPE), PQgetvalue(res, 0, COL_TYPE));
			goto out;
		}
		out->entity_dna_exists = true;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}
