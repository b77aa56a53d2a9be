/* version: the build's identity line (version, git revision, libpq, sd_notify, BLAS). */
#include "version.h"

#include <stdio.h>

#include <cblas.h>
#include <libpq-fe.h>

#include "build_config.h"
#include "revision.h"

const char *version_revision(void)
{
	/* vcs_tag leaves its fallback in place when git is missing; an empty tag says the same. */
	return PASSPORT_REVISION[0] ? PASSPORT_REVISION : "unknown";
}

const char *version_blas(void)
{
	/* OpenBLAS's cblas.h includes openblas_config.h, which defines OPENBLAS_VERSION. */
#ifdef OPENBLAS_VERSION
	const char *config = openblas_get_config();
	if (config && *config)
		return config;
#endif
	return PASSPORT_BLAS_NAME;
}

char *version_line(const char *program, char *out, size_t size)
{
	/* PQlibVersion is major * 10000 + minor from PostgreSQL 10 on. */
	int libpq = PQlibVersion();

	snprintf(out, size, "%s %s (git %s; libpq %d.%d; sd_notify %s; BLAS %s)", program, PASSPORT_VERSION,
		 version_revision(), libpq / 10000, libpq % 10000, HAVE_LIBSYSTEMD ? "yes" : "no", version_blas());
	return out;
}
