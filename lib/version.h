/*
 * version: what a binary was built from and links against, as the one line `--version` prints
 * and passportd logs at start.
 */
#ifndef PASSPORT_VERSION_H
#define PASSPORT_VERSION_H

#include <stddef.h>

/* The git revision baked in at build time ("unknown" when built outside a git checkout). */
const char *version_revision(void);

/* The BLAS library: OpenBLAS's own build string when linked against OpenBLAS, else its meson name. */
const char *version_blas(void);

/*
 * Write into out (always NUL-terminated) the line
 *   "<program> <version> (git <revision>; libpq <x.y>; sd_notify yes|no; BLAS <name>)"
 * where libpq's version is the library loaded at run time (PQlibVersion), not the headers'.
 * Returns out.
 */
char *version_line(const char *program, char *out, size_t size);

#endif
