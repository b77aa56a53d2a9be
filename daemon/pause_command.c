/*
 * pause_command: `passportd pause [SYSTEM...]` and `passportd resume [SYSTEM...]`. The state
 * lives in the database (lib/pause.c), so one command reaches every daemon on every machine
 * within one poll interval; paused work stays unprocessed and comes back on resume.
 */
#include "pause_command.h"

#include <stdio.h>

#include "db.h"
#include "pause.h"

int command_pause(const struct config *config, const char *const *names, int n_names, bool paused)
{
	struct db_error error;
	PGconn *conn = db_connect(config->dsn, paused ? "passportd pause" : "passportd resume", &error);
	long long made_due;
	char list[128];
	size_t used = 0;

	if (!conn) {
		fprintf(stderr, "passportd: cannot connect to the database: %s\n", error.message);
		return 1;
	}
	made_due = pause_set(conn, names, n_names, paused, &error);
	PQfinish(conn);
	if (made_due < 0) {
		fprintf(stderr, "passportd: %s\n", error.message);
		return 1;
	}
	list[0] = '\0';
	for (int i = 0; i < n_names && used < sizeof(list); i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
	if (paused)
		printf("paused: %s (every passportd holds the entries that touch it back within one poll interval;"
		       " they stay unprocessed until 'passportd resume')\n",
		       n_names ? list : "all");
	else
		printf("resumed: %s; %lld postponed entries made due\n", n_names ? list : "all", made_due);
	return 0;
}
