/*
 * test_entity_send: real[] target vectors kept ready to send (sql/102_entity_dna_send.sql), and
 * passportd using them only while they are the row's own:
 *   - the trigger writes array_send(embedding) and the writing transaction on every insert and
 *     update (NULL for a NULL vector); inside a subtransaction the xid is not the row's xmin;
 *   - rows written while the trigger was off get their copies when the migration runs again;
 *   - passportd reads the copy when its xid is the row's xmin (a copy made to differ from the
 *     vector is what the DNA follows) and the vector itself when the copy is stale (vectors
 *     changed with the trigger off): both give the DNA of vectors really changed.
 */
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSN_MAX 1024
#define USERS 40
#define PER_USER 6
/* Rows whose copy is the bytes of their vector, written by the row's own transaction. */
#define CONSISTENT_SQL                                                                                 \
	"SELECT count(*) FROM entity_dna WHERE embedding_send = array_send(embedding)"                    \
	" AND embedding_send_xid = xmin"
#define DIGEST_SQL                                                                                     \
	"SELECT md5(string_agg(id::text || ':' || coalesce(profile_embedding::text, 'null') || ':'"     \
	" || coalesce(dna_clock::text, 'null'), ',' ORDER BY id)) FROM media_ids"
#define NEGATED "array(SELECT -x FROM unnest(embedding) AS x)"

static PGconn *open_workload(const char *name, char *dsn)
{
	return harness_open_workload(name, USERS, PER_USER, dsn, DSN_MAX);
}

static void drain(const char *dsn)
{
	const char *argv[] = {harness_passportd(), "drain", "--dsn", dsn, NULL};
	char *out = NULL;

	if (harness_run(argv, NULL, &out) != 0)
		FAIL("passportd drain failed: %s", out ? out : "");
	free(out);
}

static void case_trigger(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = harness_create_database("entity_send_trigger", NULL, dsn, DSN_MAX);
	const char *row = "entity_type = 'track' AND entity_id = '00000000-0000-0000-0000-00000000000a'";

	printf("\n=== the columns and the trigger\n");
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'entity_dna'::regclass"
					      " AND ((attname = 'embedding_send' AND atttypid = 'bytea'::regtype"
					      " AND attstorage = 'e' AND attstattarget = 0)"
					      " OR (attname = 'embedding_send_xid' AND atttypid = 'xid'::regtype))"),
		      2);
	harness_exec(conn, "INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES"
			   " ('track', '00000000-0000-0000-0000-00000000000a', array_fill(0.25::real, ARRAY[1536])),"
			   " ('track', '00000000-0000-0000-0000-00000000000b', NULL)");
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), 1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE embedding IS NULL"
					      " AND embedding_send IS NULL AND embedding_send_xid = xmin"),
		      1);
	/* Another column written: a new version, a new copy of the same bytes. */
	harness_execf(conn, "UPDATE entity_dna SET updated_at = now() + interval '1 second' WHERE %s", row);
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), 1);
	harness_execf(conn, "UPDATE entity_dna SET embedding = " NEGATED " WHERE %s", row);
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), 1);
	ASSERT_EQ_INT(harness_intf(conn, "SELECT count(*) FROM entity_dna WHERE %s AND embedding[1] = -0.25", row), 1);
	/* Written in a subtransaction: the copy is right but its xid is not the row's xmin. */
	harness_execf(conn, "BEGIN; SAVEPOINT s; UPDATE entity_dna SET embedding = " NEGATED " WHERE %s; COMMIT", row);
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE embedding_send = array_send(embedding)"),
		      1);
	PQfinish(conn);
}

static void case_migration_again(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("entity_send_again", dsn);
	const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
	long long vectors = harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE embedding IS NOT NULL");
	char *out = NULL;

	printf("\n=== rows written with the trigger off get their copies from the migration\n");
	ASSERT_GT_INT(vectors, 10);
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), vectors);
	harness_exec(conn, "ALTER TABLE entity_dna DISABLE TRIGGER passport_entity_dna_send;"
			   "UPDATE entity_dna SET embedding = " NEGATED " WHERE embedding IS NOT NULL;"
			   "ALTER TABLE entity_dna ENABLE TRIGGER passport_entity_dna_send");
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), 0);
	harness_exec(conn, "DELETE FROM passport_schema_migrations WHERE version = 102");
	if (harness_run(argv, NULL, &out) != 0)
		FAIL("passport-migrate schema failed: %s", out ? out : "");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, CONSISTENT_SQL), vectors);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'entity_dna'::regclass"
					      " AND tgname = 'passport_entity_dna_send'"),
		      1);
	PQfinish(conn);
}

static void case_daemon(void)
{
	char dsn_a[DSN_MAX], dsn_b[DSN_MAX], dsn_c[DSN_MAX], dsn_d[DSN_MAX];
	PGconn *a = open_workload("entity_send_changed", dsn_a);
	PGconn *b = open_workload("entity_send_stale", dsn_b);
	PGconn *c = open_workload("entity_send_copy", dsn_c);
	PGconn *d = open_workload("entity_send_unchanged", dsn_d);
	char *changed, *stale, *copy, *unchanged;

	printf("\n=== passportd reads the copy only while it is the row's own\n");
	/* a: the vectors changed, the trigger on. */
	harness_exec(a, "UPDATE entity_dna SET embedding = " NEGATED " WHERE embedding IS NOT NULL");
	/* b: the same change with the trigger off: every copy is stale (the old vector). */
	harness_exec(b, "ALTER TABLE entity_dna DISABLE TRIGGER passport_entity_dna_send;"
			"UPDATE entity_dna SET embedding = " NEGATED " WHERE embedding IS NOT NULL");
	ASSERT_EQ_INT(harness_query_int(b, CONSISTENT_SQL), 0);
	/* c: the vectors unchanged, only the copies changed, by the rows' own transaction. */
	harness_exec(c, "ALTER TABLE entity_dna DISABLE TRIGGER passport_entity_dna_send;"
			"UPDATE entity_dna SET embedding_send = array_send(" NEGATED "),"
			" embedding_send_xid = pg_current_xact_id()::xid WHERE embedding IS NOT NULL");
	ASSERT_EQ_INT(harness_query_int(c, "SELECT count(*) FROM entity_dna WHERE embedding_send_xid = xmin"
					   " AND embedding_send <> array_send(embedding)"),
		      harness_query_int(c, "SELECT count(*) FROM entity_dna WHERE embedding IS NOT NULL"));
	drain(dsn_a);
	drain(dsn_b);
	drain(dsn_c);
	drain(dsn_d);
	changed = harness_query_text(a, DIGEST_SQL);
	stale = harness_query_text(b, DIGEST_SQL);
	copy = harness_query_text(c, DIGEST_SQL);
	unchanged = harness_query_text(d, DIGEST_SQL);
	printf("changed %s\nstale copies %s\nchanged copies %s\nunchanged %s\n", changed, stale, copy, unchanged);
	ASSERT_TRUE(strcmp(changed, unchanged) != 0);
	ASSERT_STR_EQ(stale, changed); /* the stale copies were not used */
	ASSERT_STR_EQ(copy, changed);  /* the copies were used */
	free(changed);
	free(stale);
	free(copy);
	free(unchanged);
	PQfinish(a);
	PQfinish(b);
	PQfinish(c);
	PQfinish(d);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	case_trigger();
	case_migration_again();
	case_daemon();
	TEST_PASS();
}
