/*
 * db_prepared: the names of the statements a connection has prepared (see db_prepared.c for
 * why and when). db.c's db_query, db_send and db_pipeline_run use it; the rest of the project
 * only turns it on and off per connection (db_prepare_enable / db_prepare_disable in db.h).
 */
#ifndef PASSPORT_DB_PREPARED_H
#define PASSPORT_DB_PREPARED_H

#include <stdbool.h>
#include <libpq-fe.h>

#define DB_PREPARED_NAME_SIZE 48

enum db_prepared_use {
	DB_PREPARED_NONE,  /* send it unnamed */
	DB_PREPARED_NEW,   /* prepare it under name first (the name is taken) */
	DB_PREPARED_READY, /* execute name */
};

/* How to run sql (with nparams parameters) on conn, and the name to run it under. */
enum db_prepared_use db_prepared_name(PGconn *conn, const char *sql, int nparams, char name[DB_PREPARED_NAME_SIZE]);

/*
 * The end of a call that may have prepared statements on conn: succeeded, they count as prepared;
 * else they are dropped (prepared again next time, under new names).
 */
void db_prepared_settle(PGconn *conn, bool succeeded);

/* A failure on conn with this SQLSTATE: 26000 or 0A000 forget all its names (see db_prepared.c). */
void db_prepared_failed(PGconn *conn, const char *sqlstate);

#endif
