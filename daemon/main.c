/* passportd: the configuration and the dispatch to a subcommand (the command line: options.c). */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "build_config.h"
#include "config.h"
#include "db.h"
#include "dna.h"
#include "drain.h"
#include "inspect.h"
#include "log.h"
#include "options.h"
#include "service.h"
#include "version.h"

/*
 * The subcommands other than `run` (which handles its signals inside its loop): the first
 * SIGTERM or SIGINT sets stop_requested, which drain reads between batches; a second one exits.
 */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
	if (stop_requested) {
		/* A second signal: leave at once; the server rolls back the open transaction. */
		_exit(128 + signo);
	}
	stop_requested = 1;
}

/* inspect's options: --limit and --since are shared with reprocess, and parsed there. */
static int run_inspect(const struct options *opt)
{
	struct inspect_options inspect = {
		.user = opt->inspect_user,
		.limit = opt->reprocess.limit ? opt->reprocess.limit : INSPECT_DEFAULT_LIMIT,
		.since = opt->reprocess.since,
		.plot = opt->plot,
		.role = opt->role,
		.json = opt->json,
	};

	return command_inspect(&opt->config, &inspect);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct sigaction sa;
	char err[512];
	int rc;

	/*
	 * Large transient buffers (query results holding vectors, a batch's write parameters) come
	 * from mmap and go back to the system when freed, and drain's workers share one arena: the
	 * resident size then follows what is in use, not the high-water mark of a fragmented heap.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, 1);
	dna_init_blas(); /* first thing: OpenBLAS's idle threads spin from the moment it is loaded */
	memset(&opt, 0, sizeof(opt));
	config_init(&opt.config);
	rc = options_parse(argc, argv, &opt);
	if (rc != OPTIONS_CONTINUE) {
		options_finish(&opt);
		return rc;
	}
	if (config_load(&opt.config, &opt.sources, err, sizeof(err)) < 0) {
		fprintf(stderr, "passportd: %s\n", err);
		options_finish(&opt);
		return EXIT_CONFIG;
	}
	if (opt.print_config) {
		config_print(&opt.config, stdout);
		options_finish(&opt);
		return 0;
	}
	log_setup("passportd", (enum log_level)opt.config.log_level, (enum log_format)opt.config.log_format);
	/*
	 * A connection string that cannot parse will never connect: say so once, without quoting
	 * it. It is part of the configuration: EX_CONFIG, which the unit does not restart on.
	 */
	if (db_check_dsn(opt.config.dsn, err, sizeof(err)) < 0) {
		fprintf(stderr, "passportd: %s\n", err);
		options_finish(&opt);
		return EXIT_CONFIG;
	}
	if (opt.check_config) {
		options_finish(&opt);
		return 0;
	}

	if (opt.command == COMMAND_RUN) {
		char line[512];
		log_info("%s", version_line("passportd", line, sizeof(line)));
		rc = service_run(&opt.config, &opt.sources);
		options_finish(&opt);
		return rc;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	switch (opt.command) {
	case COMMAND_DRAIN: rc = command_drain(&opt.config, &stop_requested); break;
	case COMMAND_STATUS: rc = admin_status(&opt.config, &opt.status); break;
	case COMMAND_REPROCESS: rc = admin_reprocess(&opt.config, &opt.reprocess); break;
	case COMMAND_INSPECT: rc = run_inspect(&opt); break;
	case COMMAND_PAUSE: rc = command_pause(&opt.config, opt.systems, opt.n_systems, true); break;
	case COMMAND_RESUME: rc = command_pause(&opt.config, opt.systems, opt.n_systems, false); break;
	default: rc = EXIT_USAGE; break;
	}
	options_finish(&opt);
	return rc;
}
