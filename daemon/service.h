/* service: `passportd run`, the long-running service (libuv loop, LISTEN/NOTIFY, polling, signals, systemd). */
#ifndef PASSPORTD_SERVICE_H
#define PASSPORTD_SERVICE_H

#include "config.h"

/* Where the configuration comes from, so that SIGHUP can read it again the same way. */
struct config_sources {
	const char *path;           /* config file */
	bool path_required;         /* given with --config: must exist */
	int n_overrides;            /* command-line values, applied last */
	const char *override_names[32];
	const char *override_values[32];
};

/* Read defaults, file, environment and overrides into config. Returns 0, or -1 with err. */
int config_load(struct config *config, const struct config_sources *sources, char *err, size_t errlen);

/* Run until SIGTERM/SIGINT. Returns the process exit status. */
int service_run(const struct config *config, const struct config_sources *sources);

#endif
