/*
 * db_prepared: named server-side statements for the connections that may keep them.
 *
 * Why: a batch sends the same half dozen statements every time, and the server parsed, analysed
 * and planned each one again: ~5 % of a P1 drain's backend samples, and more where batches are
 * small (the steady state: one worker, batches of 10, a drain took 0.82x the time with them
 * prepared). Prepared once per connection, each later run only binds and executes. The server
 * still plans a statement for its parameters when a generic plan would cost more (the walk);
 * one whose generic plan measured slower is sent unnamed (db_statement.unnamed).
 *
 * Where: only on a session of the project's own, told by the server's process id (the one a
 * pooler reports is its own invention). Behind a transaction pooler a named statement would be
 * missing on the next transaction's server connection, so there every statement stays unnamed,
 * as before.
 *
 * How it stays right: a connection's statements are registered here by the processor that owns
 * the connection (db_prepare_enable / db_prepare_disable, before PQfinish). A name counts as
 * prepared once the call that prepared it succeeded (db_prepared_settle); when that call failed,
 * the name is dropped and the next run prepares again under a new name (names are never reused,
 * so a statement the server did keep does not collide; after PREPARED_MAX_DROPPED such names
 * the connection goes back to unnamed statements). A prepared statement survives the rollback
 * of its transaction, so an ordinary error leaves the others alone. Two errors mean the server
 * no longer has, or can no longer run, what it prepared: 26000 (no such statement: something
 * deallocated it) and 0A000 (a plan whose result type a schema change altered). Then all the
 * connection's names are forgotten; after PREPARED_MAX_RESETS such resets, for good.
 */
#include "db_prepared.h"
#include "db.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PREPARED_CONNECTIONS_MAX 64 /* processors of one process: workers, helpers */
#define PREPARED_STATEMENTS_MAX 48  /* per connection; a batch has about a dozen */
#define PREPARED_MAX_RESETS 4
#define PREPARED_MAX_DROPPED 64

struct prepared_statement {
	uint64_t hash;
	char *sql;
	unsigned long number;
	bool settled; /* the call that prepared it succeeded */
};

struct prepared_connection {
	PGconn *conn;
	bool enabled;
	int resets;
	int dropped;
	int n;
	struct prepared_statement statements[PREPARED_STATEMENTS_MAX];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prepared_connection *registry[PREPARED_CONNECTIONS_MAX];
/*
 * Names are numbered for the whole process, never per connection: a connection turned off and on
 * again (one processor after another on it) still has the earlier names on the server. They
 * start with a random tag of the process: should a pooler ever pass the server's process id
 * through and still move sessions, another process's statement of the same number can never be
 * run in place of ours; the name is missing instead (26000, forgotten, unnamed after a few).
 */
static unsigned long next_number;
static pthread_once_t tag_once = PTHREAD_ONCE_INIT;
static uint32_t process_tag;

static void make_tag(void)
{
	struct timespec ts;

	if (getrandom(&process_tag, sizeof(process_tag), 0) != sizeof(process_tag)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		process_tag = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 16;
	}
}

static void statement_name(unsigned long number, char name[DB_PREPARED_NAME_SIZE])
{
	pthread_once(&tag_once, make_tag);
	snprintf(name, DB_PREPARED_NAME_SIZE, "passportd_%08x_%lu", (unsigned)process_tag, number);
}

/*
 * The connection's entry. Only the thread using the connection reads or changes an entry; the
 * lock guards the registry's slots, which other connections' threads fill and empty.
 */
static struct prepared_connection *find(PGconn *conn)
{
	struct prepared_connection *found = NULL;

	if (!conn)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < PREPARED_CONNECTIONS_MAX && !found; i++)
		if (registry[i] && registry[i]->conn == conn)
			found = registry[i];
	pthread_mutex_unlock(&registry_lock);
	return found;
}

static void forget_statements(struct prepared_connection *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->statements[i].sql);
	c->n = 0;
}

static uint64_t hash_sql(const char *sql)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *s = (const unsigned char *)sql; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	return h;
}

/* pg_backend_pid() as the server says it, -1 when it cannot be read. */
static long server_pid(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SELECT pg_backend_pid()");
	long pid = -1;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		pid = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	return pid;
}

bool db_prepare_enable(PGconn *conn)
{
	struct prepared_connection *c;
	bool placed = false;

	if (!conn || find(conn) || PQbackendPID(conn) <= 0 || server_pid(conn) != (long)PQbackendPID(conn))
		return false;
	c = calloc(1, sizeof(*c));
	if (!c)
		return false;
	c->conn = conn;
	c->enabled = true;
	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < PREPARED_CONNECTIONS_MAX && !placed; i++)
		if (!registry[i]) {
			registry[i] = c;
			placed = true;
		}
	pthread_mutex_unlock(&registry_lock);
	if (!placed)
		free(c); /* more connections than slots: the rest stay unnamed */
	return placed;
}

void db_prepare_disable(PGconn *conn)
{
	struct prepared_connection *c = NULL;

	if (!conn)
		return;
	pthread_mutex_lock(&registry_lock);
	for (int i = 0; i < PREPARED_CONNECTIONS_MAX && !c; i++)
		if (registry[i] && registry[i]->conn == conn) {
			c = registry[i];
			registry[i] = NULL;
		}
	pthread_mutex_unlock(&registry_lock);
	if (c) {
		forget_statements(c);
		free(c);
	}
}

enum db_prepared_use db_prepared_name(PGconn *conn, const char *sql, int nparams, char name[DB_PREPARED_NAME_SIZE])
{
	struct prepared_connection *c;
	uint64_t hash;
	struct prepared_statement *s;

	if (nparams == 0 || !sql)
		return DB_PREPARED_NONE; /* BEGIN, COMMIT, a count: nothing worth keeping a plan for */
	c = find(conn);
	if (!c || !c->enabled)
		return DB_PREPARED_NONE;
	hash = hash_sql(sql);
	for (int i = 0; i < c->n; i++) {
		s = &c->statements[i];
		if (s->hash == hash && strcmp(s->sql, sql) == 0) {
			statement_name(s->number, name);
			return DB_PREPARED_READY;
		}
	}
	if (c->n == PREPARED_STATEMENTS_MAX)
		return DB_PREPARED_NONE; /* a statement built from changing parts: it stays unnamed */
	s = &c->statements[c->n];
	s->sql = strdup(sql);
	if (!s->sql)
		return DB_PREPARED_NONE;
	s->hash = hash;
	s->settled = false;
	s->number = __atomic_fetch_add(&next_number, 1, __ATOMIC_RELAXED);
	c->n++;
	statement_name(s->number, name);
	return DB_PREPARED_NEW;
}

void db_prepared_settle(PGconn *conn, bool succeeded)
{
	struct prepared_connection *c = find(conn);
	int kept = 0;

	if (!c)
		return;
	for (int i = 0; i < c->n; i++) {
		struct prepared_statement *s = &c->statements[i];

		if (s->settled || succeeded) {
			s->settled = true;
			c->statements[kept++] = *s;
		} else {
			free(s->sql);
			c->dropped++;
		}
	}
	c->n = kept;
	if (c->dropped >= PREPARED_MAX_DROPPED) {
		forget_statements(c);
		c->enabled = false;
	}
}

void db_prepared_failed(PGconn *conn, const char *sqlstate)
{
	struct prepared_connection *c;

	if (strcmp(sqlstate, "26000") != 0 && strcmp(sqlstate, "0A000") != 0)
		return;
	c = find(conn);
	if (!c || c->n == 0)
		return;
	forget_statements(c);
	if (++c->resets >= PREPARED_MAX_RESETS)
		c->enabled = false;
}
