/* service: `passportd run`, the long-running service (libuv loop, LISTEN/NOTIFY, polling, signals, systemd). */
#ifndef PASSPORTD_SERVICE_H
#define PASSPORTD_SERVICE_H

#include "config.h"

/*
 * Run until SIGTERM/SIGINT, starting from config (copied) and reading sources again on SIGHUP
 * (sources must outlive the call). Returns the process exit status.
 */
int service_run(const struct config *config, const struct config_sources *sources);

#endif
