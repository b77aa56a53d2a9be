/*
 * test_poison: a catalogue of hostile entries mixed into a good workload (SPEC 4: bad input is
 * never a crash). Two `passportd run` daemons (batch sizes 20 and 500) process everything; each
 * poison entry must end processed, or dead (after its retries when the error is retryable) with
 * a clear last_error; the good entries must end exactly as in a reference database that holds
 * only them, bit for bit; the daemons must never exit.
 *
 * A second, small database with encoding SQL_ASCII feeds the daemon bytes that are not UTF-8
 * (a UTF8 database refuses them, as this test also shows).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fault.h"

#define MAX_ATTEMPTS 3
#define GOOD_USERS 40
#define GOOD_PER_USER 25

/* Good upstream rows of tests/sql/workload.sql, only ever read by poison entries. */
#define GOOD_TRACK "passport_test_uuid('track-1')::text"
#define GOOD_ARTIST "passport_test_uuid('artist-1')::text"
#define GOOD_EVENT "passport_test_uuid('event-1')::text"
#define NAMED_USER(name) "passport_test_uuid('poison-user-" name "')"
#define POISON_TRACK(name) "passport_test_uuid('poison-track-" name "')::text"

/* Checks used by several entries; $E stands for the entry's id. */
#define EVOLUTION_WITHOUT_TARGET                                                                   \
	"SELECT count(*) = 1 AND bool_and(target_id IS NULL AND target_type IS NULL)"                \
	" FROM dna_evolution WHERE passport_entry_id = $E"
#define COLISEUM(condition) "SELECT count(*) = 1 AND bool_and(" condition ") FROM coliseum_metrics WHERE passport_entry_id = $E"
#define NO_LEDGER_LINK "SELECT NOT EXISTS (SELECT 1 FROM ledger_entries WHERE passport_entry_id = $E)"

struct poison {
	const char *kind;
	const char *event_type; /* SQL (text) */
	const char *payload;    /* SQL (jsonb); NULL: SQL NULL */
	const char *systems;    /* SQL (text[]); NULL: '{}', the default route */
	const char *expect;     /* processed, dead, retried (dead after MAX_ATTEMPTS) or settled */
	const char *error;      /* part of last_error when dead or retried */
	const char *check;      /* SQL, true when the entry's effects are right; $E is its id */
	const char *user;       /* SQL (uuid); NULL: a poison user of its own, with a fan row */
	const char *mediaid;    /* SQL (uuid); NULL: SQL NULL */
	const char *timestamp;  /* SQL (timestamptz); NULL: a time among the good entries' */
	const char *source;     /* SQL (text); NULL: 'web' */
	const char *session;    /* SQL (text); NULL: 'poison' */
};

static const struct poison catalogue[] = {
	/* ---- payloads that are not objects ---- */
	{.kind = "payload is a JSON array", .event_type = "'player.track_completed'", .payload = "'[1, 2]'",
	 .expect = "dead", .error = "not an object"},
	{.kind = "payload is a JSON string", .event_type = "'player.track_completed'", .payload = "'\"hello\"'",
	 .expect = "dead", .error = "not an object"},
	{.kind = "payload is a JSON number", .event_type = "'player.track_completed'", .payload = "'42'",
	 .expect = "dead", .error = "not an object"},
	{.kind = "payload is JSON true", .event_type = "'player.track_completed'", .payload = "'true'",
	 .expect = "dead", .error = "not an object"},
	{.kind = "payload is JSON null", .event_type = "'player.track_completed'", .payload = "'null'",
	 .expect = "dead", .error = "not an object"},
	{.kind = "payload is SQL NULL (reads as {})", .event_type = "'player.track_completed'", .payload = NULL,
	 .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},

	/* ---- wrong JSON types for every key the daemon reads ---- */
	{.kind = "trackId is a number", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', 123)", .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "track_id is a boolean", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('track_id', true)", .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "content_id is an object", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('content_id', jsonb_build_object('id', " GOOD_TRACK "))", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "artistId is an array", .event_type = "'discovery.artist_discovered'",
	 .payload = "jsonb_build_object('artistId', jsonb_build_array(" GOOD_ARTIST "))", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "artist_id is a fraction", .event_type = "'discovery.artist_discovered'",
	 .payload = "jsonb_build_object('artist_id', 1.5)", .expect = "processed", .check = COLISEUM("artist_id IS NULL")},
	{.kind = "eventId is null", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('eventId', NULL::text)", .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "event_id is false", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('event_id', false)", .expect = "processed", .check = COLISEUM("event_id IS NULL")},
	{.kind = "targetType is a number", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('targetId', " GOOD_EVENT ", 'targetType', 5)", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "target_id is a number", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('target_id', 7, 'target_type', 'event')", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "targetType without targetId", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('targetType', 'track')", .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "targetType unknown", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('targetId', " GOOD_EVENT ", 'targetType', 'playlist')", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "brandId a number, brand_id an array", .event_type = "'coliseum.metric_tracked'",
	 .payload = "jsonb_build_object('brandId', 9, 'brand_id', jsonb_build_array(1))", .expect = "processed",
	 .check = COLISEUM("brand_id IS NULL")},
	{.kind = "amount_cents is a string", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', '100')", .expect = "dead", .error = "amount_cents"},
	{.kind = "amountCents is a fraction", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amountCents', 12.5)", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount_cents is a boolean", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', true)", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount_cents is an object", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', jsonb_build_object('value', 1))", .expect = "dead",
	 .error = "amount_cents"},
	{.kind = "amount_cents and amountCents disagree", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 100, 'amountCents', 200)", .expect = "dead", .error = "amount_cents"},
	{.kind = "weight is a string", .event_type = "'concierto.vote_cast'",
	 .payload = "jsonb_build_object('eventId', " GOOD_EVENT ", 'weight', 'heavy')", .expect = "processed",
	 .check = COLISEUM("metric_value = 1")},
	{.kind = "value is an array", .event_type = "'coliseum.metric_tracked'",
	 .payload = "jsonb_build_object('value', jsonb_build_array(5))", .expect = "processed",
	 .check = COLISEUM("metric_value = 1")},
	{.kind = "value is 1e400 (a jsonb numeric, infinite as a double)", .event_type = "'coliseum.metric_tracked'",
	 .payload = "'{\"value\": 1e400}'", .expect = "processed", .check = COLISEUM("metric_value = 1")},
	{.kind = "dna_match_score is a string", .event_type = "'coliseum.metric_tracked'",
	 .payload = "jsonb_build_object('dna_match_score', '0.5')", .expect = "processed",
	 .check = COLISEUM("dna_match_score IS NULL")},
	{.kind = "dna_match_score out of [0, 1]", .event_type = "'coliseum.metric_tracked'",
	 .payload = "jsonb_build_object('dna_match_score', 1.5, 'dnaMatchScore', -0.5)", .expect = "processed",
	 .check = COLISEUM("dna_match_score IS NULL")},
	{.kind = "correlation_id is a number", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 100, 'correlation_id', 12345)", .expect = "processed",
	 .check = NO_LEDGER_LINK},
	{.kind = "correlationId is an object", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 100, 'correlationId', jsonb_build_object('id', 'x'))",
	 .expect = "processed", .check = NO_LEDGER_LINK},

	/* ---- sizes ---- */
	{.kind = "5 MiB payload", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " GOOD_TRACK ", 'blob', repeat('x', 5 * 1024 * 1024))",
	 .expect = "dead", .error = "limit"},
	{.kind = "payload just under 1 MiB", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " GOOD_TRACK ", 'blob', repeat('y', 1000000))", .expect = "processed",
	 .check = COLISEUM("length(metadata->>'blob') = 1000000")},
	{.kind = "50,000 keys", .event_type = "'coliseum.metric_tracked'",
	 .payload = "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 50000) AS g)", .expect = "processed",
	 .check = COLISEUM("metric_value = 1")},

	/* ---- ids that are not UUIDs ---- */
	{.kind = "trackId not a UUID", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', 'not-a-uuid')", .expect = "processed",
	 .check = "SELECT (" EVOLUTION_WITHOUT_TARGET ") AND (" COLISEUM("track_id IS NULL") ")"},
	{.kind = "artist_id in braces", .event_type = "'discovery.artist_discovered'",
	 .payload = "jsonb_build_object('artist_id', '{' || " GOOD_ARTIST " || '}')", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "eventId without hyphens", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('eventId', replace(" GOOD_EVENT ", '-', ''))", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "trackId with a trailing space", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " GOOD_TRACK " || ' ')", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "targetId empty", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('targetId', '', 'targetType', 'artist')", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},

	/* ---- ids of rows that do not exist ---- */
	{.kind = "trackId of no track", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', passport_test_uuid('no-such-track')::text)", .expect = "processed",
	 .check = "SELECT (" EVOLUTION_WITHOUT_TARGET ") AND (" COLISEUM("track_id IS NULL") ")"},
	{.kind = "artist_id of no artist (coliseum has a foreign key)", .event_type = "'discovery.artist_discovered'",
	 .payload = "jsonb_build_object('artist_id', passport_test_uuid('no-such-artist')::text)", .expect = "processed",
	 .check = "SELECT (" EVOLUTION_WITHOUT_TARGET ") AND (" COLISEUM("artist_id IS NULL") ")"},
	{.kind = "eventId of no event", .event_type = "'concierto.event_attended'",
	 .payload = "jsonb_build_object('eventId', passport_test_uuid('no-such-event')::text)", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "mediaid_id of no row", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .mediaid = "passport_test_uuid('no-such-row')", .expect = "dead", .error = "does not belong"},
	{.kind = "user without any media_ids row", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .user = NAMED_USER("norow"), .expect = "retried", .error = "no media_ids row"},
	{.kind = "correlation_id of no ledger row", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 100, 'correlation_id', 'poison-missing-correlation')",
	 .expect = "retried", .error = "no ledger entry", .check = NO_LEDGER_LINK},
	{.kind = "user with two rows, none a fan row", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .user = NAMED_USER("two-rows"), .expect = "dead", .error = "none with role fan"},

	/* ---- timestamps ---- */
	{.kind = "NULL timestamp", .event_type = "'player.track_completed'", .payload = "'{}'", .timestamp = "NULL",
	 .expect = "dead", .error = "timestamp"},
	{.kind = "timestamp in 9999", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'9999-12-31 23:59:59+00'", .expect = "processed"},
	{.kind = "timestamp in year 1", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'0001-01-01 00:00:00+00'", .expect = "processed"},
	{.kind = "timestamp 4713 BC", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'4713-01-01 00:00:00+00 BC'", .expect = "processed"},
	{.kind = "timestamp +infinity", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'infinity'", .expect = "dead", .error = "timestamp"},
	{.kind = "timestamp -infinity", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'-infinity'", .expect = "dead", .error = "timestamp"},
	{.kind = "largest timestamptz (294276 AD)", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .timestamp = "'294276-12-31 23:59:59+00'", .expect = "dead", .error = "timestamp"},

	/* ---- routing ---- */
	{.kind = "unknown system", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .systems = "'{mediaid,bogus}'", .expect = "dead", .error = "unknown system"},
	{.kind = "empty system name", .event_type = "'player.track_completed'", .payload = "'{}'", .systems = "'{\"\"}'",
	 .expect = "dead", .error = "unknown system"},
	{.kind = "NULL system name", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .systems = "ARRAY[NULL]::text[]", .expect = "dead", .error = "unknown system"},
	{.kind = "system name in capitals", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .systems = "'{MEDIAID}'", .expect = "dead", .error = "unknown system 'MEDIAID'"},
	{.kind = "long multibyte system name (error truncated at a character)", .event_type = "'player.track_completed'",
	 .payload = "'{}'", .systems = "ARRAY[repeat('é', 70)]", .expect = "dead", .error = "unknown system"},
	{.kind = "affects_systems SQL NULL (default route)", .event_type = "'player.track_completed'",
	 .payload = "'{}'", .systems = "NULL", .expect = "processed"},
	{.kind = "1000 times coliseum", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .systems = "array_fill('coliseum'::text, ARRAY[1000])", .expect = "processed", .check = COLISEUM("true")},

	/* ---- event types ---- */
	{.kind = "unknown event type, default route", .event_type = "'poison.unknown_type'", .payload = "'{}'",
	 .expect = "processed",
	 .check = "SELECT NOT EXISTS (SELECT 1 FROM dna_evolution WHERE passport_entry_id = $E)"
		  " AND NOT EXISTS (SELECT 1 FROM coliseum_metrics WHERE passport_entry_id = $E)"},
	{.kind = "unknown event type routed to mediaid (weights 0.5)", .event_type = "'poison.unknown_type'",
	 .payload = "'{}'", .systems = "'{mediaid}'", .expect = "processed",
	 .check = "SELECT count(*) = 1 AND bool_and(alpha = 0.05::real) FROM dna_evolution WHERE passport_entry_id = $E"},
	{.kind = "empty event type", .event_type = "''", .payload = "'{}'", .systems = "'{coliseum}'",
	 .expect = "processed", .check = COLISEUM("metric_type = ''")},
	{.kind = "10,000-character event type", .event_type = "repeat('t', 10000)", .payload = "'{}'",
	 .systems = "'{coliseum,mediaid}'", .expect = "processed", .check = COLISEUM("length(metric_type) = 10000")},

	/* ---- bad vectors ---- */
	{.kind = "target vector with NaN", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("nan") ")", .expect = "dead", .error = "invalid"},
	{.kind = "target vector with Infinity", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("inf") ")", .expect = "dead", .error = "invalid"},
	{.kind = "target vector of 10 elements", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("short") ")", .expect = "dead", .error = "invalid"},
	{.kind = "target vector empty", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("empty") ")", .expect = "dead", .error = "invalid"},
	{.kind = "target vector with a NULL element", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("null-element") ")", .expect = "dead",
	 .error = "invalid"},
	{.kind = "target vector two-dimensional", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("2d") ")", .expect = "dead", .error = "invalid"},
	{.kind = "target vector with lower bound 0", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("lower-bound") ")", .expect = "processed",
	 .check = "SELECT count(*) = 1 AND bool_and(target_type = 'track') FROM dna_evolution WHERE passport_entry_id = $E"},
	{.kind = "target vector NULL, no artist (decay only)", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("null-vector") ")", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "track without vector, its artist's vector has NaN", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("via-nan-artist") ")", .expect = "dead",
	 .error = "invalid"},
	{.kind = "DNA row with NaN", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .user = NAMED_USER("nan"), .expect = "dead", .error = "invalid"},
	{.kind = "DNA row of 100 elements", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .user = NAMED_USER("short"), .expect = "dead", .error = "invalid"},
	{.kind = "DNA row with a NULL element", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .user = NAMED_USER("null-element"), .expect = "dead", .error = "invalid"},
	{.kind = "DNA row and target at FLT_MAX", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " POISON_TRACK("huge") ")", .user = NAMED_USER("huge"),
	 .expect = "processed"},

	/* ---- users ---- */
	{.kind = "NULL user routed to mediaid", .event_type = "'player.track_completed'", .payload = "'{}'",
	 .systems = "'{mediaid}'", .user = "NULL", .expect = "dead", .error = "no user_id"},
	{.kind = "NULL user, default route mediaid + coliseum (nothing half-done)", .event_type = "'player.track_completed'",
	 .payload = "'{}'", .user = "NULL", .expect = "dead", .error = "no user_id"},
	{.kind = "NULL user, coliseum only", .event_type = "'coliseum.metric_tracked'", .payload = "'{}'", .user = "NULL",
	 .expect = "processed", .check = COLISEUM("user_id IS NULL")},
	{.kind = "mediaid_id of a good user's row", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " GOOD_TRACK ")", .mediaid = "passport_test_uuid('fan-row-1')",
	 .expect = "dead", .error = "does not belong"},
	{.kind = "good user, mediaid_id of a poison row", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', " GOOD_TRACK ")", .user = "passport_test_uuid('user-2')",
	 .mediaid = "passport_test_uuid('poison-row-1')", .expect = "dead", .error = "does not belong"},

	/* ---- strings that look like SQL or format directives ---- */
	{.kind = "trackId with SQL", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object('trackId', $$'); DROP TABLE passport_entries; --$$)", .expect = "processed",
	 .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "event type with SQL", .event_type = "$$x'; DELETE FROM media_ids; --$$", .payload = "'{}'",
	 .systems = "'{coliseum}'", .expect = "processed",
	 .check = COLISEUM("metric_type = $$x'; DELETE FROM media_ids; --$$")},
	{.kind = "source and session_id with SQL", .event_type = "'coliseum.metric_tracked'", .payload = "'{}'",
	 .source = "$$web'); TRUNCATE dna_evolution; --$$", .session = "$$'; UPDATE media_ids SET version = 0; --$$",
	 .expect = "processed",
	 .check = COLISEUM("source = 'system' AND session_id = $$'; UPDATE media_ids SET version = 0; --$$")},
	{.kind = "correlation_id with SQL", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 1, 'correlation_id', $$' OR '1'='1$$)", .expect = "retried",
	 .error = "' OR '1'='1", .check = NO_LEDGER_LINK},
	{.kind = "keys with SQL", .event_type = "'player.track_completed'",
	 .payload = "jsonb_build_object($$'; DROP TABLE x; --$$, $$\"; DELETE$$, 'trackId', " GOOD_TRACK ")",
	 .expect = "processed"},
	{.kind = "correlation_id with printf directives", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 1, 'correlation_id', '%s%s%n%x%99999d')", .expect = "retried",
	 .error = "%s%s%n%x%99999d"},

	/* ---- unicode ---- */
	{.kind = "escapes: surrogate pair, control characters, U+FEFF, U+FFFF", .event_type = "'player.track_completed'",
	 .payload = "'{\"trackId\": \"\\ud83d\\ude00\", \"\\u00e9\\u0001\": \"\\u001f\\ufeff\\uffff\\\\\\\"\"}'",
	 .expect = "processed", .check = EVOLUTION_WITHOUT_TARGET},
	{.kind = "correlation_id of 66 three-byte characters (error truncated at a character)",
	 .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 1, 'correlation_id', repeat('€', 66))", .expect = "retried",
	 .error = "no ledger entry"},
	{.kind = "correlation_id over 200 bytes (ignored)", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', 1, 'correlation_id', repeat('c', 201))", .expect = "processed"},

	/* ---- nesting ---- */
	{.kind = "nested 500 deep", .event_type = "'player.track_completed'",
	 .payload = "('{\"a\": ' || repeat('[', 500) || repeat(']', 500) || '}')::jsonb", .expect = "processed"},
	{.kind = "nested 1,500 deep", .event_type = "'player.track_completed'",
	 .payload = "('{\"a\": ' || repeat('[', 1500) || repeat(']', 1500) || '}')::jsonb", .expect = "dead",
	 .error = "payload"},
	{.kind = "nested 10,000 deep", .event_type = "'player.track_completed'",
	 .payload = "('{\"a\": ' || repeat('{\"b\": ', 10000) || '1' || repeat('}', 10000) || '}')::jsonb",
	 .expect = "dead", .error = "payload"},

	/* ---- amounts ---- */
	{.kind = "negative amount", .event_type = "'treasury.transaction_created'",
	 .payload = "jsonb_build_object('amount_cents', -1)", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 1e30", .event_type = "'treasury.transaction_created'", .payload = "'{\"amount_cents\": 1e30}'",
	 .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 1e400", .event_type = "'concierto.ticket_purchased'", .payload = "'{\"amountCents\": 1e400}'",
	 .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 2^63 - 1", .event_type = "'treasury.transaction_created'",
	 .payload = "'{\"amount_cents\": 9223372036854775807}'", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 2^64", .event_type = "'treasury.transaction_created'",
	 .payload = "'{\"amount_cents\": 18446744073709551616}'", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 2^53 + 1", .event_type = "'treasury.transaction_created'",
	 .payload = "'{\"amount_cents\": 9007199254740993}'", .expect = "dead", .error = "amount_cents"},
	{.kind = "amount 0", .event_type = "'treasury.transaction_created'", .payload = "'{\"amount_cents\": 0}'",
	 .expect = "processed", .check = COLISEUM("metric_value = 0")},
	{.kind = "amount 100.0", .event_type = "'treasury.transaction_created'", .payload = "'{\"amount_cents\": 100.0}'",
	 .expect = "processed", .check = COLISEUM("metric_value = 100 AND metric_unit = 'cents'")},
	{.kind = "negative vote weight", .event_type = "'concierto.vote_cast'",
	 .payload = "jsonb_build_object('eventId', " GOOD_EVENT ", 'weight', -5)", .expect = "processed"},
	{.kind = "huge vote weight 1e300", .event_type = "'concierto.vote_cast'",
	 .payload = "'{\"weight\": 1e300}'", .expect = "processed"},
};

#define N_POISON ((int)(sizeof catalogue / sizeof catalogue[0]))

/* The poison fixtures: DNA rows, entity vectors and the entries of the catalogue. */
static const char *const fixtures_sql =
	/* a fan row for each catalogue entry's own user */
	"INSERT INTO media_ids (id, user_uuid, role, profile_embedding, location_code)"
	" SELECT passport_test_uuid('poison-row-' || i), passport_test_uuid('poison-user-' || i), 'fan',"
	"        passport_test_vector('poison-dna-' || i, 0.2), 'poison'"
	"   FROM generate_series(1, %d) AS i;"
	/* named users */
	"INSERT INTO media_ids (id, user_uuid, role, profile_embedding, location_code) VALUES"
	" (passport_test_uuid('poison-row-nan'), passport_test_uuid('poison-user-nan'), 'fan',"
	"  (SELECT array_agg(CASE WHEN g = 5 THEN 'NaN'::real ELSE 0.1::real END ORDER BY g) FROM generate_series(1, 1536) g),"
	"  'poison'),"
	" (passport_test_uuid('poison-row-short'), passport_test_uuid('poison-user-short'), 'fan',"
	"  array_fill(0.1::real, ARRAY[100]), 'poison'),"
	" (passport_test_uuid('poison-row-null-element'), passport_test_uuid('poison-user-null-element'), 'fan',"
	"  (SELECT array_agg(CASE WHEN g = 9 THEN NULL ELSE 0.1::real END ORDER BY g) FROM generate_series(1, 1536) g),"
	"  'poison'),"
	" (passport_test_uuid('poison-row-huge'), passport_test_uuid('poison-user-huge'), 'fan',"
	"  array_fill(3.4e38::real, ARRAY[1536]), 'poison'),"
	" (passport_test_uuid('poison-row-two-rows-a'), passport_test_uuid('poison-user-two-rows'), 'artist',"
	"  passport_test_vector('poison-two-a', 0.2), 'poison'),"
	" (passport_test_uuid('poison-row-two-rows-b'), passport_test_uuid('poison-user-two-rows'), 'brand',"
	"  passport_test_vector('poison-two-b', 0.2), 'poison');"
	/* entity vectors */
	"INSERT INTO content_items (id, artist_id, title)"
	" SELECT passport_test_uuid('poison-track-' || name), NULL, 'poison ' || name"
	"   FROM unnest(ARRAY['nan', 'inf', 'short', 'empty', 'null-element', '2d', 'lower-bound', 'null-vector',"
	"                     'huge']) AS name;"
	"INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES"
	" ('track', passport_test_uuid('poison-track-nan'),"
	"  (SELECT array_agg(CASE WHEN g = 7 THEN 'NaN'::real ELSE 0.5::real END ORDER BY g) FROM generate_series(1, 1536) g)),"
	" ('track', passport_test_uuid('poison-track-inf'),"
	"  (SELECT array_agg(CASE WHEN g = 1536 THEN '-Infinity'::real ELSE 0.5::real END ORDER BY g)"
	"     FROM generate_series(1, 1536) g)),"
	" ('track', passport_test_uuid('poison-track-short'), array_fill(0.5::real, ARRAY[10])),"
	" ('track', passport_test_uuid('poison-track-empty'), '{}'),"
	" ('track', passport_test_uuid('poison-track-null-element'),"
	"  (SELECT array_agg(CASE WHEN g = 3 THEN NULL ELSE 0.5::real END ORDER BY g) FROM generate_series(1, 1536) g)),"
	" ('track', passport_test_uuid('poison-track-2d'), array_fill(0.5::real, ARRAY[2, 768])),"
	" ('track', passport_test_uuid('poison-track-lower-bound'), array_fill(0.5::real, ARRAY[1536], ARRAY[0])),"
	" ('track', passport_test_uuid('poison-track-null-vector'), NULL),"
	" ('track', passport_test_uuid('poison-track-huge'), array_fill(3.4e38::real, ARRAY[1536]));"
	"INSERT INTO artist_profiles (id, user_id, artist_name)"
	" VALUES (passport_test_uuid('poison-artist-nan'), passport_test_uuid('poison-artist-nan-user'), 'NaN artist');"
	"INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES ('artist', passport_test_uuid('poison-artist-nan'),"
	"  (SELECT array_agg(CASE WHEN g = 100 THEN 'NaN'::real ELSE 0.5::real END ORDER BY g) FROM generate_series(1, 1536) g));"
	"INSERT INTO content_items (id, artist_id, title)"
	" VALUES (passport_test_uuid('poison-track-via-nan-artist'), passport_test_uuid('poison-artist-nan'), 'via NaN');";

/*
 * Twins: users with the same starting vector and the same entries whose dna_preferences are all
 * unusable (wrong types, out of range, not an object), so each must end exactly like the user
 * with no preferences. The last one has a valid learning rate and must end differently.
 */
static const char *const twin_flags[] = {
	"'{}'",
	"'{\"dna_preferences\": \"abc\"}'",
	("'{\"dna_preferences\": {\"learningRate\": \"0.3\", \"culturalMultiplier\": true, \"behavioralMultiplier\": -1,"
	 " \"economicMultiplier\": 1e400, \"spatialMultiplier\": [2]}}'"),
	"'[1, 2, 3]'",
	"'{\"dna_preferences\": {\"learningRate\": 0.7, \"culturalMultiplier\": 3.5, \"spatialMultiplier\": null}}'",
	"NULL",
	"'{\"dna_preferences\": {\"learningRate\": 1e-400, \"economicMultiplier\": -1e400}}'",
	"'{\"dna_preferences\": null}'",
	"'{\"dna_preferences\": {\"learningRate\": 0.3}}'", /* valid: must differ */
};
#define N_TWINS ((int)(sizeof twin_flags / sizeof twin_flags[0]))

/* The entry's id as SQL. */
static void entry_id_sql(int index, char *out, size_t outlen)
{
	snprintf(out, outlen, "passport_test_uuid('poison-%d')", index + 1);
}

static void insert_catalogue(PGconn *conn)
{
	for (int i = 0; i < N_POISON; i++) {
		const struct poison *p = &catalogue[i];
		char id[64], user[96], timestamp[160];

		entry_id_sql(i, id, sizeof id);
		if (p->user)
			snprintf(user, sizeof user, "%s", p->user);
		else
			snprintf(user, sizeof user, "passport_test_uuid('poison-user-%d')", i + 1);
		if (p->timestamp)
			snprintf(timestamp, sizeof timestamp, "%s", p->timestamp);
		else
			snprintf(timestamp, sizeof timestamp,
				 "timestamptz '2026-01-01 00:00:00+00' + make_interval(days => %d, hours => %d)",
				 1 + (i * 37) % 88, i % 24);
		harness_execf(conn,
			    "INSERT INTO passport_entries (id, user_id, mediaid_id, event_type, event_category, payload,"
			    " affects_systems, source, session_id, \"timestamp\")"
			    " VALUES (%s, %s, %s, %s, 'poison', %s, %s, %s, %s, %s)",
			    id, user, p->mediaid ? p->mediaid : "NULL", p->event_type, p->payload ? p->payload : "NULL",
			    p->systems ? p->systems : "'{}'", p->source ? p->source : "'web'",
			    p->session ? p->session : "'poison'", timestamp);
	}
	for (int t = 0; t < N_TWINS; t++) {
		harness_execf(conn,
			    "INSERT INTO media_ids (id, user_uuid, role, profile_embedding, content_flags, location_code)"
			    " VALUES (passport_test_uuid('poison-twin-row-%d'), passport_test_uuid('poison-twin-%d'), 'fan',"
			    " passport_test_vector('poison-twin', 0.2), %s, 'poison')",
			    t, t, twin_flags[t]);
		harness_execf(conn,
			    "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, \"timestamp\")"
			    " SELECT passport_test_uuid('poison-twin-%d-' || k), passport_test_uuid('poison-twin-%d'),"
			    "  (ARRAY['player.track_completed', 'discovery.artist_discovered', 'concierto.vote_cast',"
			    "         'player.track_skipped'])[k], 'poison',"
			    "  (ARRAY[jsonb_build_object('trackId', " GOOD_TRACK "), jsonb_build_object('artistId', " GOOD_ARTIST "),"
			    "         jsonb_build_object('eventId', " GOOD_EVENT ", 'weight', 3),"
			    "         jsonb_build_object('trackId', passport_test_uuid('track-2')::text)])[k],"
			    "  timestamptz '2026-01-01 00:00:00+00' + make_interval(days => 10 * k)"
			    " FROM generate_series(1, 4) AS k",
			    t, t);
	}
}

/* Substitute the entry's id for every $E of a check. */
static char *expand_check(const char *check, const char *id)
{
	size_t n = 0, id_len = strlen(id);
	char *out = malloc(strlen(check) * (id_len + 1) + 1);

	if (!out)
		FAIL("out of memory");
	for (const char *c = check; *c; c++) {
		if (c[0] == '$' && c[1] == 'E') {
			memcpy(out + n, id, id_len);
			n += id_len;
			c++;
		} else {
			out[n++] = *c;
		}
	}
	out[n] = '\0';
	return out;
}

static bool clear_error_prefix(const char *error)
{
	static const char *const prefixes[] = {"payload: ", "entry: ", "route: ", "mediaid: ", "coliseum: ",
					       "treasury: ", "database: ", NULL};
	for (int i = 0; prefixes[i]; i++)
		if (strncmp(error, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* Check every catalogue entry; print the catalogue with outcomes; fail listing every mismatch. */
static void check_catalogue(PGconn *conn)
{
	int problems = 0;

	printf("\n%-3s %-68s %-9s %s\n", "#", "kind", "outcome", "last_error");
	for (int i = 0; i < N_POISON; i++) {
		const struct poison *p = &catalogue[i];
		char id[64], sql[512], problem[600] = "";
		PGresult *res;
		const char *state, *error;
		int attempts;

		entry_id_sql(i, id, sizeof id);
		snprintf(sql, sizeof sql,
			 "SELECT CASE WHEN processed THEN 'processed' WHEN dead_at IS NOT NULL THEN 'dead'"
			 " WHEN next_attempt_at > now() THEN 'retrying' ELSE 'due' END,"
			 " coalesce(processing_attempts, 0), last_error FROM passport_entries WHERE id = %s",
			 id);
		res = PQexec(conn, sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
			FAIL("reading entry %d: %s", i + 1, PQresultErrorMessage(res));
		state = PQgetvalue(res, 0, 0);
		attempts = atoi(PQgetvalue(res, 0, 1));
		error = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
		printf("%-3d %-68.68s %-9s %.110s\n", i + 1, p->kind, state, error ? error : "-");

		if (strcmp(state, "processed") == 0) {
			if (strcmp(p->expect, "processed") != 0 && strcmp(p->expect, "settled") != 0)
				snprintf(problem, sizeof problem, "processed, expected %s", p->expect);
			else if (error)
				snprintf(problem, sizeof problem, "processed but last_error is set");
		} else if (strcmp(state, "dead") == 0) {
			if (strcmp(p->expect, "processed") == 0)
				snprintf(problem, sizeof problem, "dead, expected processed");
			else if (strcmp(p->expect, "retried") == 0 && attempts != MAX_ATTEMPTS)
				snprintf(problem, sizeof problem, "dead after %d attempts, expected %d retryable attempts",
					 attempts, MAX_ATTEMPTS);
			else if (strcmp(p->expect, "dead") == 0 && attempts != 1)
				snprintf(problem, sizeof problem, "dead after %d attempts, expected a permanent error (1)",
					 attempts);
			else if (!error || !*error)
				snprintf(problem, sizeof problem, "dead without a last_error");
			else if (!clear_error_prefix(error))
				snprintf(problem, sizeof problem, "last_error does not start with 'system: '");
			else if (strlen(error) > 600)
				snprintf(problem, sizeof problem, "last_error is %zu bytes long", strlen(error));
			else if (p->error && !strstr(error, p->error))
				snprintf(problem, sizeof problem, "last_error does not mention '%s'", p->error);
			else if (harness_intf(conn,
					    "SELECT (SELECT count(*) FROM dna_evolution WHERE passport_entry_id = %s)"
					    " + (SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id = %s)"
					    " + (SELECT count(*) FROM ledger_entries WHERE passport_entry_id = %s)",
					    id, id, id) != 0)
				snprintf(problem, sizeof problem, "dead but has effects (evolution, coliseum or ledger rows)");
		} else {
			snprintf(problem, sizeof problem, "not settled: %s after %d attempts", state, attempts);
		}
		if (!problem[0] && p->check && strcmp(state, "processed") == 0) {
			char *check = expand_check(p->check, id);
			char *ok = harness_query_text(conn, check);
			if (!ok || strcmp(ok, "t") != 0)
				snprintf(problem, sizeof problem, "its effects are wrong: %s", check);
			free(ok);
			free(check);
		}
		if (problem[0]) {
			problems++;
			fprintf(stderr, "PROBLEM poison %d (%s): %s\n", i + 1, p->kind, problem);
		}
		PQclear(res);
	}
	if (problems)
		FAIL("%d of %d poison entries did not end as expected (see PROBLEM lines)", problems, N_POISON);
	printf("all %d poison entries settled as expected\n", N_POISON);
}

static void check_twins(PGconn *conn)
{
	ASSERT_EQ_INT(harness_intf(conn,
				"SELECT count(*) FROM passport_entries WHERE id::text IN (SELECT passport_test_uuid("
				"'poison-twin-' || t || '-' || k)::text FROM generate_series(0, %d) t, generate_series(1, 4) k)"
				" AND processed",
				N_TWINS - 1),
		      4 * N_TWINS);
	for (int t = 1; t < N_TWINS; t++) {
		char *same = harness_textf(conn,
					 "SELECT a.profile_embedding::text = b.profile_embedding::text AND a.dna_clock = b.dna_clock"
					 " FROM media_ids a, media_ids b WHERE a.id = passport_test_uuid('poison-twin-row-0')"
					 " AND b.id = passport_test_uuid('poison-twin-row-%d')",
					 t);
		bool expect_same = t < N_TWINS - 1;
		if (!same || (strcmp(same, "t") == 0) != expect_same)
			FAIL("twin %d (content_flags %s) %s the twin without preferences", t, twin_flags[t],
			     expect_same ? "does not end like" : "ends exactly like");
		free(same);
	}
	ASSERT_EQ_INT(harness_intf(conn, "SELECT version FROM media_ids WHERE id = passport_test_uuid('poison-twin-row-0')") > 1,
		      1);
	printf("twins: %d unusable dna_preferences variants give the default result; a valid one does not\n",
	       N_TWINS - 2);
}

/* The good entries and their effects must be exactly as in the reference. */
static void check_good_entries(PGconn *conn, PGconn *ref, const char *what)
{
	fault_compare_keyed(what, "good passport_entries", conn, ref,
			    "SELECT id::text, ROW(processed, dead_at IS NOT NULL, coalesce(processing_attempts, 0),"
			    " last_error)::text FROM passport_entries WHERE event_category <> 'poison' ORDER BY 1");
	fault_compare_keyed(what, "good media_ids", conn, ref,
			    "SELECT id::text, ROW(dna_clock, profile_embedding::text)::text FROM media_ids"
			    " WHERE location_code IS DISTINCT FROM 'poison' ORDER BY 1");
	fault_compare_keyed(what, "good dna_evolution", conn, ref,
			    "SELECT d.passport_entry_id::text || '/' || d.mediaid_id::text,"
			    " ROW(d.event_type, d.event_time, d.target_type, d.target_id, d.alpha, d.decay_cultural,"
			    " d.decay_behavioral, d.decay_economic, d.decay_spatial, d.delta_cultural, d.delta_behavioral,"
			    " d.delta_economic, d.delta_spatial, d.late)::text"
			    " FROM dna_evolution d JOIN passport_entries e ON e.id = d.passport_entry_id"
			    " WHERE e.event_category <> 'poison' ORDER BY 1");
	fault_compare_keyed(what, "good coliseum_metrics", conn, ref,
			    "SELECT c.passport_entry_id::text,"
			    " ROW(c.user_id, c.artist_id, c.event_id, c.track_id, c.brand_id, c.metric_type, c.metric_value,"
			    " c.metric_unit, c.source, c.session_id, c.dna_match_score, c.metadata, c.\"timestamp\")::text"
			    " FROM coliseum_metrics c JOIN passport_entries e ON e.id = c.passport_entry_id"
			    " WHERE e.event_category <> 'poison' ORDER BY 1");
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT count(*) FROM dna_evolution d JOIN media_ids m ON m.id = d.mediaid_id"
					" JOIN passport_entries e ON e.id = d.passport_entry_id"
					" WHERE m.location_code IS DISTINCT FROM 'poison' AND e.event_category = 'poison'"),
		      0);
}

/* PostgreSQL itself refuses the invalid escapes, so a UTF8 database never hands them to the daemon. */
static void check_database_refuses_invalid_escapes(PGconn *conn)
{
	static const char *const refused[] = {"SELECT '\"\\ud800\"'::jsonb", "SELECT '\"\\udc00\\ud800\"'::jsonb",
					      "SELECT '\"\\u0000\"'::jsonb", "SELECT convert_from('\\xff'::bytea, 'UTF8')",
					      NULL};
	for (int i = 0; refused[i]; i++) {
		PGresult *res = PQexec(conn, refused[i]);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			FAIL("PostgreSQL accepted %s: the daemon could meet it", refused[i]);
		PQclear(res);
	}
	printf("a UTF8 database refuses lone surrogates, \\u0000 and invalid bytes at insert time\n");
}

/* status and status --json as passportd; the JSON's dead count must match the table. */
static void check_status(PGconn *conn, const char *daemon_dsn)
{
	const char *text_argv[] = {harness_passportd(), "status", "--dsn", daemon_dsn, NULL};
	const char *json_argv[] = {harness_passportd(), "status", "--json", "--dsn", daemon_dsn, NULL};
	char *output = NULL;
	cJSON *root, *dead;

	ASSERT_EQ_INT(harness_run(text_argv, NULL, &output), 0);
	ASSERT_STR_CONTAINS(output, "dead:");
	free(output);
	ASSERT_EQ_INT(harness_run(json_argv, NULL, &output), 0);
	root = cJSON_Parse(output);
	if (!root)
		FAIL("status --json printed something that is not JSON");
	dead = cJSON_GetObjectItemCaseSensitive(root, "dead");
	ASSERT_TRUE(cJSON_IsNumber(dead));
	ASSERT_EQ_INT((long long)dead->valuedouble,
		      harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"));
	cJSON_Delete(root);
	free(output);
}

/* ---- the SQL_ASCII database ------------------------------------------------------------ */

static PGconn *create_sql_ascii_database(const char *dbname, char *dsn, char *daemon_dsn)
{
	char admin_dsn[FAULT_DSN_MAX];
	PGconn *admin, *conn;
	char *sql;
	char *output = NULL;

	admin_dsn[0] = '\0';
	fault_dsn_with(admin_dsn, sizeof admin_dsn, "", "host", getenv("PASSPORT_TEST_PGHOST"));
	if (getenv("PASSPORT_TEST_PGPORT") && *getenv("PASSPORT_TEST_PGPORT"))
		fault_dsn_with(admin_dsn, sizeof admin_dsn, admin_dsn, "port", getenv("PASSPORT_TEST_PGPORT"));
	fault_dsn_with(admin_dsn, sizeof admin_dsn, admin_dsn, "user", "postgres");
	if (snprintf(dsn, FAULT_DSN_MAX, "%s dbname='%s'", admin_dsn, dbname) >= FAULT_DSN_MAX)
		FAIL("connection string too long");
	fault_dsn_with(admin_dsn, sizeof admin_dsn, admin_dsn, "dbname", "postgres");

	admin = harness_connect(admin_dsn);
	harness_exec(admin, "SET client_min_messages = warning");
	harness_execf(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	harness_execf(admin,
		    "CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", dbname);
	PQfinish(admin);

	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	sql = fault_read_source("tests/sql/upstream.sql");
	harness_exec(conn, sql);
	free(sql);
	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		if (harness_run(argv, NULL, &output) != 0)
			FAIL("passport-migrate schema failed on the SQL_ASCII database");
		free(output);
	}
	sql = fault_read_source("tests/sql/workload.sql");
	harness_exec(conn, sql);
	free(sql);
	harness_allow_role_login(conn);
	fault_dsn_with(daemon_dsn, FAULT_DSN_MAX, dsn, "user", "passportd");
	return conn;
}

static void case_invalid_utf8(void)
{
	char dsn[FAULT_DSN_MAX], daemon_dsn[FAULT_DSN_MAX];
	PGconn *conn;
	/* Raw bytes that are not UTF-8: the database (SQL_ASCII) stores them as they are. */
	static const char *const entries[] = {
		"'player.track_completed', '{\"trackId\": \"\xff\xfe\", \"note\": \"\xc3\x28 \xe2\x82\"}', '{}', 'web', 's'",
		"'poison.\xff\xfe', '{}', '{coliseum}', 'web', 's'",
		"'treasury.transaction_created', '{\"amount_cents\": 5, \"correlation_id\": \"corr-\xff\xfe\xfd\"}', '{}',"
		" 'web', 's'",
		"'player.track_completed', '{}', '{\"\xc3\"}', 'web', 's'",
		"'coliseum.metric_tracked', '{\"\xc3\x28\": 1}', '{}', '\xff\xff', '\xfe'",
		"'player.track_completed', '{}', '{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x82\"}', 'web', 's'",
	};
	int n = (int)(sizeof entries / sizeof entries[0]);

	printf("\n=== bytes that are not UTF-8 (SQL_ASCII database)\n");
	conn = create_sql_ascii_database("t_fault_poison_ascii", dsn, daemon_dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(4, 5)"), 20);
	harness_exec(conn, "INSERT INTO media_ids (id, user_uuid, role, profile_embedding)"
			   " VALUES (passport_test_uuid('ascii-row'), passport_test_uuid('ascii-user'), 'fan',"
			   " passport_test_vector('ascii', 0.2))");
	for (int i = 0; i < n; i++)
		harness_execf(conn,
			    "INSERT INTO passport_entries (id, user_id, event_type, payload, affects_systems, source,"
			    " session_id, event_category, \"timestamp\")"
			    " VALUES (passport_test_uuid('ascii-%d'), passport_test_uuid('ascii-user'), %s, 'poison',"
			    " timestamptz '2026-02-01 00:00:00+00' + make_interval(hours => %d))",
			    i, entries[i], i);
	{
		const char *extra[] = {"--max-attempts", "1", NULL};
		fault_drain(daemon_dsn, extra);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE event_category <> 'poison'"
					     " AND NOT processed"),
		      0);
	ASSERT_EQ_INT(fault_unsettled(conn), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"
					     " AND (last_error IS NULL OR last_error = '')"),
		      0);
	printf("%lld of %d entries with invalid bytes processed, the others dead with an error\n",
	       harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE event_category = 'poison' AND processed"),
	       n);
	{
		const char *argv[] = {harness_passportd(), "status", "--json", "--dsn", daemon_dsn, NULL};
		char *output = NULL;
		ASSERT_EQ_INT(harness_run(argv, NULL, &output), 0);
		free(output);
	}
	PQfinish(conn);
}

int main(void)
{
	char dsn[FAULT_DSN_MAX], daemon_dsn[FAULT_DSN_MAX], ref_dsn[FAULT_DSN_MAX], ref_daemon_dsn[FAULT_DSN_MAX];
	PGconn *conn, *ref;
	pid_t daemons[2];
	char logs[2][600];
	const char *sizes[2] = {"20", "500"};
	const char *env[] = {"PASSPORTD_RETRY_BASE=0.2", NULL};
	long long good, evolution_before;
	double started;

	fault_begin("poison");
	printf("poison catalogue: %d hostile entries plus %d twins x 4, among %d good entries\n", N_POISON, N_TWINS,
	       GOOD_USERS * GOOD_PER_USER);
	conn = fault_create_database("fault_poison", dsn, daemon_dsn);
	ref = fault_create_database("fault_poison_ref", ref_dsn, ref_daemon_dsn);
	good = harness_intf(conn, "SELECT passport_test_workload(%d, %d)", GOOD_USERS, GOOD_PER_USER);
	ASSERT_EQ_INT(harness_intf(ref, "SELECT passport_test_workload(%d, %d)", GOOD_USERS, GOOD_PER_USER), good);
	check_database_refuses_invalid_escapes(conn);
	harness_execf(conn, fixtures_sql, N_POISON);
	insert_catalogue(conn);

	/* The reference holds only the good entries, drained once. */
	ASSERT_EQ_INT(fault_drain(ref_daemon_dsn, NULL), good);

	started = fault_now();
	for (int i = 0; i < 2; i++) {
		const char *argv[] = {harness_passportd(), "run", "--dsn", daemon_dsn, "--batch-size", sizes[i],
				      "--max-attempts", "3", "--poll-interval", "0.3", "--log-format", "plain", NULL};
		snprintf(logs[i], sizeof logs[i], "%s/daemon-%d.log", fault_temp_dir(), i);
		daemons[i] = fault_spawn(argv, env, logs[i]);
	}
	for (;;) {
		long long unsettled = fault_unsettled(conn);
		for (int i = 0; i < 2; i++) {
			int status;
			if (fault_reap(daemons[i], &status))
				FAIL("daemon %d exited with status %d while processing poison", i, status);
		}
		if (unsettled == 0)
			break;
		if (fault_now() - started > 300)
			FAIL("%lld entries still unsettled after 300 s", unsettled);
		fault_sleep(0.2);
	}
	printf("everything settled in %.1f s\n", fault_now() - started);

	check_catalogue(conn);
	check_twins(conn);
	check_good_entries(conn, ref, "good entries among poison");
	fault_expect_no_duplicates(conn);
	check_status(conn, daemon_dsn);

	/* The daemons stop cleanly; reprocess --now then has the entries to itself. */
	for (int i = 0; i < 2; i++) {
		int status;
		kill(daemons[i], SIGTERM);
		status = fault_wait(daemons[i], 15.0);
		if (status != 0)
			FAIL("daemon %d did not exit 0 after SIGTERM (status %d)", i, status);
		fault_expect_clean_log(logs[i]);
	}

	/* Requeue the dead payload entries and process them in this process: each dies again, nothing else moves. */
	evolution_before = harness_query_int(conn, "SELECT count(*) FROM dna_evolution");
	{
		const char *dry[] = {harness_passportd(), "reprocess", "--dry-run", "--dsn", daemon_dsn, NULL};
		const char *now[] = {harness_passportd(), "reprocess", "--now", "--error-like", "payload:%",
				     "--max-attempts", "10", "--dsn", daemon_dsn, NULL};
		char *output = NULL;
		long long payload_dead = harness_query_int(conn, "SELECT count(*) FROM passport_entries"
								 " WHERE dead_at IS NOT NULL AND last_error LIKE 'payload:%'");
		ASSERT_EQ_INT(harness_run(dry, NULL, &output), 0);
		free(output);
		ASSERT_EQ_INT(harness_run(now, NULL, &output), 0);
		ASSERT_GE_INT(payload_dead, 8);
		{
			int dead_again = 0;
			for (const char *line = strstr(output, "dead again"); line; line = strstr(line + 1, "dead again"))
				dead_again++;
			ASSERT_EQ_INT(dead_again, payload_dead);
		}
		free(output);
		ASSERT_EQ_INT(fault_unsettled(conn), 0);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"
						     " AND last_error LIKE 'payload:%' AND processing_attempts = 1"),
			      payload_dead);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), evolution_before);
	ASSERT_EQ_INT(fault_drain(daemon_dsn, NULL), 0);
	check_good_entries(conn, ref, "after reprocess and a second drain");

	/* Every table is still there and whole: the SQL-looking strings stayed data. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), good + N_POISON + 4 * N_TWINS);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM media_ids WHERE version < 1"), 0);
	PQfinish(conn);
	PQfinish(ref);

	case_invalid_utf8();
	fault_passed();
	TEST_PASS();
}
