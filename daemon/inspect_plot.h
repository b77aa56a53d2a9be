/*
 * inspect_plot: the picture of `passportd inspect --plot FILE`: a DNA row's cumulative change per
 * domain over time, one line per domain, late entries marked, drawn with cairo as PNG or SVG.
 * No database: the caller hands over the evolution steps.
 */
#ifndef PASSPORTD_INSPECT_PLOT_H
#define PASSPORTD_INSPECT_PLOT_H

#include <stdbool.h>
#include <stddef.h>

#include "vec.h"

#define PLOT_WIDTH 960
#define PLOT_HEIGHT 540

enum plot_format {
	PLOT_FORMAT_PNG,
	PLOT_FORMAT_SVG,
};

/* One dna_evolution step, in the order the steps happened (event time, then id). */
struct plot_point {
	double time;                /* event time, seconds since the Unix epoch */
	bool late;                  /* a late entry (dna_evolution.late) */
	double change[VEC_DOMAINS]; /* L2 norm of each domain's change (dna_evolution.delta_*) */
};

/*
 * The series as drawn, for the report and the tests: each domain's line is the running sum of
 * its changes, one point per step.
 */
struct plot_drawn {
	int width, height;            /* pixels (SVG: px units) */
	int points;                   /* points on each line */
	int late_points;              /* points marked as late */
	int nonfinite_values;         /* changes that were NaN or infinite, counted as 0 */
	double first_time, last_time; /* seconds since the epoch; 0 when there are no points */
	double total[VEC_DOMAINS];    /* each line's last value */
	double max_step[VEC_DOMAINS]; /* each domain's largest single change */
	double y_max;                 /* top of the y axis */
};

/* The format a file name asks for: ".png" or ".svg" (any case). Returns 0, or -1 for another name. */
int plot_format_from_path(const char *path, enum plot_format *format);

/*
 * Draw the n points (n may be 0: empty axes and a note) under title into the file at path,
 * replacing it, and describe what was drawn in *drawn. Returns 0, or -1 with a one-line reason
 * in err (cannot write the file, out of memory).
 */
int plot_write(const char *path, enum plot_format format, const char *title, const struct plot_point *points,
	       int n, struct plot_drawn *drawn, char *err, size_t errlen);

#endif
