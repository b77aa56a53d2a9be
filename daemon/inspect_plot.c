/* inspect_plot: a DNA row's cumulative change per domain over time, drawn with cairo (PNG or SVG). */
#include "inspect_plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

/* The plot area inside the image, in pixels. */
#define MARGIN_LEFT 80.0
#define MARGIN_RIGHT 30.0
#define MARGIN_TOP 56.0
#define MARGIN_BOTTOM 64.0
#define TICKS 5
#define LATE_MARK_RADIUS 4.0

/* One colour per domain (cultural, behavioral, economic, spatial), told apart also in grey. */
static const double domain_colours[VEC_DOMAINS][3] = {
	{0.80, 0.20, 0.20},
	{0.15, 0.40, 0.80},
	{0.95, 0.60, 0.05},
	{0.10, 0.55, 0.25},
};

int plot_format_from_path(const char *path, enum plot_format *format)
{
	const char *dot = strrchr(path, '.');

	if (dot && strcasecmp(dot, ".png") == 0)
		*format = PLOT_FORMAT_PNG;
	else if (dot && strcasecmp(dot, ".svg") == 0)
		*format = PLOT_FORMAT_SVG;
	else
		return -1;
	return 0;
}

/* The smallest of 1, 2, 5 times a power of ten that is at least x (x > 0). */
static double nice_ceiling(double x)
{
	double power = pow(10.0, floor(log10(x)));
	static const double steps[] = {1.0, 2.0, 5.0, 10.0};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i] * power >= x)
			return steps[i] * power;
	}
	return 10.0 * power;
}

/*
 * Fill drawn from the points: the running sums, their extents and the marks. The lines drawn
 * below are these sums, so what the report says was plotted is what was plotted.
 */
static void describe(const struct plot_point *points, int n, struct plot_drawn *drawn)
{
	memset(drawn, 0, sizeof(*drawn));
	drawn->width = PLOT_WIDTH;
	drawn->height = PLOT_HEIGHT;
	drawn->points = n;
	for (int i = 0; i < n; i++) {
		if (points[i].late)
			drawn->late_points++;
		for (int d = 0; d < VEC_DOMAINS; d++) {
			double change = points[i].change[d];

			if (!isfinite(change)) {
				drawn->nonfinite_values++;
				continue;
			}
			drawn->total[d] += change;
			if (change > drawn->max_step[d])
				drawn->max_step[d] = change;
		}
	}
	if (n > 0) {
		drawn->first_time = points[0].time;
		drawn->last_time = points[n - 1].time;
	}
	drawn->y_max = 0.0;
	for (int d = 0; d < VEC_DOMAINS; d++) {
		if (drawn->total[d] > drawn->y_max)
			drawn->y_max = drawn->total[d];
	}
	drawn->y_max = drawn->y_max > 0.0 ? nice_ceiling(drawn->y_max) : 1.0;
}

/* Where a time and a value land in the plot area. */
struct frame {
	double x0, x1, y0, y1; /* plot area: left, right, bottom, top (y grows downwards) */
	double t0, t1;         /* time range */
	double y_max;
};

static double frame_x(const struct frame *f, double t)
{
	return f->x0 + (t - f->t0) / (f->t1 - f->t0) * (f->x1 - f->x0);
}

static double frame_y(const struct frame *f, double value)
{
	return f->y0 - value / f->y_max * (f->y0 - f->y1);
}

static void show_text_at(cairo_t *cr, double x, double y, const char *text, double align)
{
	cairo_text_extents_t extents;

	cairo_text_extents(cr, text, &extents);
	cairo_move_to(cr, x - extents.width * align - extents.x_bearing, y);
	cairo_show_text(cr, text);
}

static void draw_axes(cairo_t *cr, const struct frame *f)
{
	char label[64];
	/* Dates alone once the ticks are at least a day apart; times of day below that. */
	bool short_range = f->t1 - f->t0 < TICKS * 86400.0;

	cairo_set_line_width(cr, 1.0);
	cairo_set_font_size(cr, 12.0);
	for (int i = 0; i <= TICKS; i++) {
		double value = f->y_max * i / TICKS, y = frame_y(f, value);
		double t = f->t0 + (f->t1 - f->t0) * i / TICKS, x = frame_x(f, t);
		time_t seconds = (time_t)t;
		struct tm tm;

		cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
		cairo_move_to(cr, f->x0, y);
		cairo_line_to(cr, f->x1, y);
		cairo_move_to(cr, x, f->y0);
		cairo_line_to(cr, x, f->y1);
		cairo_stroke(cr);
		cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
		snprintf(label, sizeof(label), "%.3g", value);
		show_text_at(cr, f->x0 - 8.0, y + 4.0, label, 1.0);
		gmtime_r(&seconds, &tm);
		strftime(label, sizeof(label), short_range ? "%m-%d %H:%M" : "%Y-%m-%d", &tm);
		/* The first and last labels stay inside the image. */
		show_text_at(cr, x, f->y0 + 18.0, label, i == 0 ? 0.0 : i == TICKS ? 1.0 : 0.5);
	}
	cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
	cairo_rectangle(cr, f->x0, f->y1, f->x1 - f->x0, f->y0 - f->y1);
	cairo_stroke(cr);
	show_text_at(cr, (f->x0 + f->x1) / 2.0, f->y0 + 40.0, "event time (UTC)", 0.5);
	cairo_save(cr);
	cairo_translate(cr, 18.0, (f->y0 + f->y1) / 2.0);
	cairo_rotate(cr, -M_PI / 2.0);
	show_text_at(cr, 0.0, 0.0, "cumulative change (sum of per-step L2 norms)", 0.5);
	cairo_restore(cr);
}

static void draw_legend(cairo_t *cr, const struct frame *f)
{
	double x = f->x0 + 12.0, y = f->y1 + 18.0;

	cairo_set_font_size(cr, 12.0);
	for (int d = 0; d < VEC_DOMAINS; d++, y += 18.0) {
		cairo_set_source_rgb(cr, domain_colours[d][0], domain_colours[d][1], domain_colours[d][2]);
		cairo_set_line_width(cr, 2.5);
		cairo_move_to(cr, x, y - 4.0);
		cairo_line_to(cr, x + 24.0, y - 4.0);
		cairo_stroke(cr);
		cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
		cairo_move_to(cr, x + 32.0, y);
		cairo_show_text(cr, vec_domain_names[d]);
	}
	cairo_set_line_width(cr, 1.5);
	cairo_new_path(cr); /* not joined to where the last label ended */
	cairo_arc(cr, x + 12.0, y - 4.0, LATE_MARK_RADIUS, 0.0, 2.0 * M_PI);
	cairo_stroke(cr);
	cairo_move_to(cr, x + 32.0, y);
	cairo_show_text(cr, "late entry");
}

/* One domain's running sum as a line through every point, late points circled. */
static void draw_series(cairo_t *cr, const struct frame *f, const struct plot_point *points, int n, int d)
{
	double sum = 0.0;

	cairo_set_source_rgb(cr, domain_colours[d][0], domain_colours[d][1], domain_colours[d][2]);
	cairo_set_line_width(cr, 2.0);
	cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
	for (int i = 0; i < n; i++) {
		double change = points[i].change[d];

		sum += isfinite(change) ? change : 0.0;
		if (i == 0)
			cairo_move_to(cr, frame_x(f, points[i].time), frame_y(f, sum));
		else
			cairo_line_to(cr, frame_x(f, points[i].time), frame_y(f, sum));
	}
	if (n == 1)
		cairo_rel_line_to(cr, 0.5, 0.0); /* a single point still shows */
	cairo_stroke(cr);

	sum = 0.0;
	cairo_set_line_width(cr, 1.5);
	for (int i = 0; i < n; i++) {
		double change = points[i].change[d];

		sum += isfinite(change) ? change : 0.0;
		if (!points[i].late)
			continue;
		cairo_new_sub_path(cr);
		cairo_arc(cr, frame_x(f, points[i].time), frame_y(f, sum), LATE_MARK_RADIUS, 0.0, 2.0 * M_PI);
		cairo_stroke(cr);
	}
}

static void draw(cairo_t *cr, const char *title, const struct plot_point *points, int n, const struct plot_drawn *drawn)
{
	struct frame f = {
		.x0 = MARGIN_LEFT,
		.x1 = PLOT_WIDTH - MARGIN_RIGHT,
		.y0 = PLOT_HEIGHT - MARGIN_BOTTOM,
		.y1 = MARGIN_TOP,
		.t0 = drawn->first_time,
		.t1 = drawn->last_time,
		.y_max = drawn->y_max,
	};

	/* One step, or all at one instant: an hour either side, so the points sit mid-plot. */
	if (!(f.t1 > f.t0)) {
		f.t0 -= 3600.0;
		f.t1 += 3600.0;
	}
	cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
	cairo_paint(cr);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
	cairo_set_font_size(cr, 15.0);
	cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
	show_text_at(cr, PLOT_WIDTH / 2.0, 30.0, title, 0.5);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	draw_axes(cr, &f);
	if (n == 0) {
		cairo_set_font_size(cr, 14.0);
		show_text_at(cr, (f.x0 + f.x1) / 2.0, (f.y0 + f.y1) / 2.0, "no DNA change in this window", 0.5);
		return;
	}
	cairo_save(cr);
	cairo_rectangle(cr, f.x0 - LATE_MARK_RADIUS - 1.0, f.y1 - LATE_MARK_RADIUS - 1.0,
			f.x1 - f.x0 + 2.0 * LATE_MARK_RADIUS + 2.0, f.y0 - f.y1 + 2.0 * LATE_MARK_RADIUS + 2.0);
	cairo_clip(cr);
	for (int d = 0; d < VEC_DOMAINS; d++)
		draw_series(cr, &f, points, n, d);
	cairo_restore(cr);
	draw_legend(cr, &f);
}

int plot_write(const char *path, enum plot_format format, const char *title, const struct plot_point *points,
	       int n, struct plot_drawn *drawn, char *err, size_t errlen)
{
	cairo_surface_t *surface;
	cairo_t *cr;
	cairo_status_t status;

	describe(points, n, drawn);
	if (format == PLOT_FORMAT_SVG) {
		surface = cairo_svg_surface_create(path, PLOT_WIDTH, PLOT_HEIGHT);
		if (cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS)
			cairo_svg_surface_set_document_unit(surface, CAIRO_SVG_UNIT_PX);
	} else {
		surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, PLOT_WIDTH, PLOT_HEIGHT);
	}
	cr = cairo_create(surface);
	draw(cr, title, points, n, drawn);
	status = cairo_status(cr);
	cairo_destroy(cr);
	if (status == CAIRO_STATUS_SUCCESS && format == PLOT_FORMAT_PNG)
		status = cairo_surface_write_to_png(surface, path);
	/* An SVG is written as the surface finishes; a failed write shows in its status then. */
	cairo_surface_finish(surface);
	if (status == CAIRO_STATUS_SUCCESS)
		status = cairo_surface_status(surface);
	cairo_surface_destroy(surface);
	/*
	 * No cairo object is left: drop cairo's font caches and fontconfig's configuration, so that
	 * a leak checker sees a clean exit of this one-shot command. Nothing draws after this.
	 */
	cairo_debug_reset_static_data();
	FcFini();
	if (status != CAIRO_STATUS_SUCCESS) {
		snprintf(err, errlen, "cannot write the plot: %s", cairo_status_to_string(status));
		return -1;
	}
	return 0;
}
