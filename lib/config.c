/*
 * config: passportd's options (the table is in config_options.c), read from
 * defaults < config file < environment (PASSPORTD_<NAME>) < command line, and applied again on
 * SIGHUP.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "tables.h"

static void *field(struct config *config, const struct config_option *option)
{
	return (char *)config + option->offset;
}

static const void *field_const(const struct config *config, const struct config_option *option)
{
	return (const char *)config + option->offset;
}

static int parse_systems(const char *value, unsigned *out, char *err, size_t errlen)
{
	char buffer[256];
	char *saveptr = NULL;
	unsigned systems = 0;

	if (strlen(value) >= sizeof(buffer)) {
		snprintf(err, errlen, "list too long");
		return -1;
	}
	strcpy(buffer, value);
	/*
	 * An empty list is refused: with no system enabled every entry would be marked processed
	 * with nothing delivered, which a typo (systems = "") must not do to a production queue.
	 */
	if (strspn(buffer, ", \t") == strlen(buffer)) {
		snprintf(err, errlen, "empty; name at least one of mediaid, coliseum, treasury");
		return -1;
	}
	for (char *token = strtok_r(buffer, ", \t", &saveptr); token; token = strtok_r(NULL, ", \t", &saveptr)) {
		unsigned system = system_from_name(token);
		if (!system) {
			snprintf(err, errlen, "unknown system '%.40s' (mediaid, coliseum, treasury)", token);
			return -1;
		}
		systems |= system;
	}
	*out = systems;
	return 0;
}

int config_parse_listen_address(const char *text, char *host, size_t hostlen, int *port, char *err, size_t errlen)
{
	const char *colon, *host_start = text, *host_end;
	char *end;
	long number;

	if (text[0] == '[') {
		host_start = text + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || host_end[1] != ':') {
			snprintf(err, errlen, "'%.60s' is not [IPV6]:PORT", text);
			return -1;
		}
		colon = host_end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon || memchr(text, ':', (size_t)(colon - text))) {
			snprintf(err, errlen, "'%.60s' is not HOST:PORT (write an IPv6 address as [ADDRESS]:PORT)", text);
			return -1;
		}
		host_end = colon;
	}
	if ((size_t)(host_end - host_start) >= hostlen) {
		snprintf(err, errlen, "the host of '%.60s' is too long", text);
		return -1;
	}
	errno = 0;
	number = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || number < 1 || number > 65535) {
		snprintf(err, errlen, "the port of '%.60s' must be a number from 1 to 65535", text);
		return -1;
	}
	memcpy(host, host_start, (size_t)(host_end - host_start));
	host[host_end - host_start] = '\0';
	*port = (int)number;
	return 0;
}

int config_set(struct config *config, const char *name, const char *value, char *err, size_t errlen)
{
	const struct config_option *o = config_find(name);
	char *end;

	if (!o) {
		snprintf(err, errlen, "unknown option '%.60s'", name);
		return -1;
	}
	switch (o->type) {
	case CONFIG_INT:
	case CONFIG_LONG: {
		long long v;
		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end != '\0' || (double)v < o->min || (double)v > o->max) {
			snprintf(err, errlen, "%s must be a whole number from %.0f to %.0f, not '%.40s'", name, o->min,
				 o->max, value);
			return -1;
		}
		if (o->type == CONFIG_INT)
			*(int *)field(config, o) = (int)v;
		else
			*(long *)field(config, o) = (long)v;
		return 0;
	}
	case CONFIG_DOUBLE: {
		double v;
		errno = 0;
		v = strtod(value, &end);
		if (errno || end == value || *end != '\0' || !isfinite(v) || v < o->min || v > o->max) {
			snprintf(err, errlen, "%s must be a number from %g to %g, not '%.40s'", name, o->min, o->max, value);
			return -1;
		}
		*(double *)field(config, o) = v;
		return 0;
	}
	case CONFIG_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1")) {
			*(bool *)field(config, o) = true;
		} else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") ||
			   !strcmp(value, "0")) {
			*(bool *)field(config, o) = false;
		} else {
			snprintf(err, errlen, "%s must be true or false, not '%.40s'", name, value);
			return -1;
		}
		return 0;
	case CONFIG_STRING: {
		char *copy = strdup(value);
		if (!copy) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*(char **)field(config, o));
		*(char **)field(config, o) = copy;
		return 0;
	}
	case CONFIG_LOG_LEVEL: {
		int level = log_level_from_name(value);
		if (level < 0) {
			snprintf(err, errlen, "%s must be error, warning, notice, info or debug, not '%.40s'", name, value);
			return -1;
		}
		*(int *)field(config, o) = level;
		return 0;
	}
	case CONFIG_LOG_FORMAT: {
		int format = log_format_from_name(value);
		if (format < 0) {
			snprintf(err, errlen, "%s must be auto, plain, journal or json, not '%.40s'", name, value);
			return -1;
		}
		*(int *)field(config, o) = format;
		return 0;
	}
	case CONFIG_SYSTEMS: {
		char reason[128];
		if (parse_systems(value, (unsigned *)field(config, o), reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "%s: %s", name, reason);
			return -1;
		}
		return 0;
	}
	case CONFIG_LISTEN_ADDRESS: {
		char host[CONFIG_ADDRESS_MAX], reason[160];
		int port;
		if (*value && (strlen(value) >= CONFIG_ADDRESS_MAX ||
			       config_parse_listen_address(value, host, sizeof(host), &port, reason, sizeof(reason)) < 0)) {
			snprintf(err, errlen, "%s: %s", name,
				 strlen(value) >= CONFIG_ADDRESS_MAX ? "address too long" : reason);
			return -1;
		}
		snprintf((char *)field(config, o), CONFIG_ADDRESS_MAX, "%s", value);
		return 0;
	}
	}
	return -1;
}

void config_init(struct config *config)
{
	char err[256];

	memset(config, 0, sizeof(*config));
	for (const struct config_option *o = config_options; o->name; o++)
		if (config_set(config, o->name, o->default_value, err, sizeof(err)) < 0)
			abort(); /* a bad default is a programming error */
}

void config_finish(struct config *config)
{
	free(config->dsn);
	config->dsn = NULL;
}

void config_copy(struct config *dst, const struct config *src)
{
	char *dsn = strdup(src->dsn ? src->dsn : "");

	if (dst != src)
		config_finish(dst);
	*dst = *src;
	dst->dsn = dsn;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int config_read_file(struct config *config, const char *path, bool required, char *err, size_t errlen)
{
	FILE *file = fopen(path, "r");
	char line[4096];
	int number = 0;
	struct stat st;

	if (!file) {
		if (!required && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* A directory opens, and then reads as an empty file: refuse anything but a file. */
	if (fstat(fileno(file), &st) < 0 || S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory, not a file" : strerror(errno));
		fclose(file);
		return -1;
	}
	while (fgets(line, sizeof(line), file)) {
		char *text, *equals, reason[256];

		number++;
		if (!strchr(line, '\n') && !feof(file)) {
			snprintf(err, errlen, "%s:%d: line too long", path, number);
			fclose(file);
			return -1;
		}
		text = trim(line);
		if (*text == '#' || *text == '\0')
			continue;
		equals = strchr(text, '=');
		if (!equals) {
			snprintf(err, errlen, "%s:%d: expected 'name = value'", path, number);
			fclose(file);
			return -1;
		}
		*equals = '\0';
		if (config_set(config, trim(text), trim(equals + 1), reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, number, reason);
			fclose(file);
			return -1;
		}
	}
	if (ferror(file)) {
		snprintf(err, errlen, "%s: read error", path);
		fclose(file);
		return -1;
	}
	fclose(file);
	return 0;
}

extern char **environ;

int config_read_environment(struct config *config, char *err, size_t errlen)
{
	/* A PASSPORTD_ variable that names no option is a typo that would otherwise go unnoticed. */
	for (char **entry = environ; entry && *entry; entry++) {
		const char *equals = strchr(*entry, '=');
		char name[96];
		size_t n;

		if (strncmp(*entry, "PASSPORTD_", 10) != 0 || !equals)
			continue;
		n = (size_t)(equals - *entry) - 10;
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		for (size_t i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)(*entry)[10 + i]);
		name[n] = '\0';
		/* PASSPORTD_CONFIG names the file itself (read by the command line's parser). */
		if (!config_find(name) && strcmp(name, "config") != 0) {
			snprintf(err, errlen, "%.*s: no such option (PASSPORTD_<NAME> names an option of passportd --help)",
				 (int)(equals - *entry > 80 ? 80 : equals - *entry), *entry);
			return -1;
		}
	}
	for (const struct config_option *o = config_options; o->name; o++) {
		char variable[96] = "PASSPORTD_";
		size_t n = strlen(variable);
		const char *value;
		char reason[256];

		for (const char *c = o->name; *c && n + 1 < sizeof(variable); c++)
			variable[n++] = (char)toupper((unsigned char)*c);
		variable[n] = '\0';
		value = getenv(variable);
		if (!value)
			continue;
		if (config_set(config, o->name, value, reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "%s: %s", variable, reason);
			return -1;
		}
	}
	return 0;
}

int config_load(struct config *config, const struct config_sources *sources, char *err, size_t errlen)
{
	const char *url = getenv("PASSPORT_DATABASE_URL");
	char reason[256];

	if (config_read_file(config, sources->path, sources->path_required, err, errlen) < 0)
		return -1;
	if (config->dsn && *config->dsn)
		snprintf(config->dsn_origin, sizeof(config->dsn_origin), "the config file %s", sources->path);
	/* The project's conventional variable is environment too: it beats the file. */
	if (url && *url) {
		if (config_set(config, "dsn", url, reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "PASSPORT_DATABASE_URL: %s", reason);
			return -1;
		}
		snprintf(config->dsn_origin, sizeof(config->dsn_origin), "PASSPORT_DATABASE_URL");
	}
	if (config_read_environment(config, err, errlen) < 0)
		return -1;
	if (getenv("PASSPORTD_DSN"))
		snprintf(config->dsn_origin, sizeof(config->dsn_origin), "PASSPORTD_DSN");
	for (int i = 0; i < sources->n_overrides; i++) {
		if (config_set(config, sources->override_names[i], sources->override_values[i], reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "%s", reason);
			return -1;
		}
		if (strcmp(sources->override_names[i], "dsn") == 0)
			snprintf(config->dsn_origin, sizeof(config->dsn_origin), "--dsn");
	}
	if (!config->dsn || !*config->dsn)
		snprintf(config->dsn_origin, sizeof(config->dsn_origin), "%s",
			 url && *url ? "PASSPORT_DATABASE_URL"
				     : "libpq's environment (PGHOST, PGDATABASE, PGSERVICE, ..., else libpq's defaults)");
	return 0;
}

/* A connection string with any password removed, or "(invalid connection string)". */
static char *dsn_without_password(const char *dsn)
{
	PQconninfoOption *options;
	char *out = NULL;
	size_t len = 0;
	FILE *stream;

	if (!dsn || !*dsn)
		return strdup("");
	options = PQconninfoParse(dsn, NULL);
	if (!options)
		return strdup("(invalid connection string)");
	stream = open_memstream(&out, &len);
	if (!stream) {
		PQconninfoFree(options);
		return NULL;
	}
	for (PQconninfoOption *o = options; o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			fprintf(stream, "%spassword=********", ftell(stream) ? " " : "");
			continue;
		}
		fprintf(stream, "%s%s='", ftell(stream) ? " " : "", o->keyword);
		for (const char *c = o->val; *c; c++) {
			if (*c == '\'' || *c == '\\')
				fputc('\\', stream);
			fputc(*c, stream);
		}
		fputc('\'', stream);
	}
	fclose(stream);
	PQconninfoFree(options);
	return out;
}

char *config_value_text(const struct config *config, const struct config_option *o)
{
	char buffer[256];

	switch (o->type) {
	case CONFIG_INT:
		snprintf(buffer, sizeof(buffer), "%d", *(const int *)field_const(config, o));
		break;
	case CONFIG_LONG:
		snprintf(buffer, sizeof(buffer), "%ld", *(const long *)field_const(config, o));
		break;
	case CONFIG_DOUBLE:
		snprintf(buffer, sizeof(buffer), "%g", *(const double *)field_const(config, o));
		break;
	case CONFIG_BOOL:
		snprintf(buffer, sizeof(buffer), "%s", *(const bool *)field_const(config, o) ? "true" : "false");
		break;
	case CONFIG_STRING:
		return dsn_without_password(*(char *const *)field_const(config, o));
	case CONFIG_LOG_LEVEL:
		snprintf(buffer, sizeof(buffer), "%s", log_level_name((enum log_level)*(const int *)field_const(config, o)));
		break;
	case CONFIG_LOG_FORMAT: {
		static const char *const names[] = {"auto", "plain", "journal", "json"};
		int format = *(const int *)field_const(config, o);
		snprintf(buffer, sizeof(buffer), "%s", format >= 0 && format < 4 ? names[format] : "auto");
		break;
	}
	case CONFIG_LISTEN_ADDRESS:
		snprintf(buffer, sizeof(buffer), "%s", (const char *)field_const(config, o));
		break;
	case CONFIG_SYSTEMS: {
		unsigned systems = *(const unsigned *)field_const(config, o);
		buffer[0] = '\0';
		for (unsigned bit = SYSTEM_MEDIAID; bit <= SYSTEM_TREASURY; bit <<= 1)
			if (systems & bit) {
				if (buffer[0])
					strcat(buffer, ",");
				strcat(buffer, system_name(bit));
			}
		break;
	}
	}
	return strdup(buffer);
}

void config_print(const struct config *config, FILE *out)
{
	for (const struct config_option *o = config_options; o->name; o++) {
		char *value = config_value_text(config, o);
		fprintf(out, "%s = %s\n", o->name, value ? value : "");
		free(value);
		if (strcmp(o->name, "dsn") == 0)
			fprintf(out, "# dsn from %s\n", config->dsn_origin);
	}
}

/* Copy one option's value from src to dst (a string is duplicated). Returns 0, or -1 when out of memory. */
static int copy_value(struct config *dst, const struct config *src, const struct config_option *o)
{
	switch (o->type) {
	case CONFIG_INT:
	case CONFIG_LOG_LEVEL:
	case CONFIG_LOG_FORMAT:
		*(int *)field(dst, o) = *(const int *)field_const(src, o);
		return 0;
	case CONFIG_LONG:
		*(long *)field(dst, o) = *(const long *)field_const(src, o);
		return 0;
	case CONFIG_DOUBLE:
		*(double *)field(dst, o) = *(const double *)field_const(src, o);
		return 0;
	case CONFIG_BOOL:
		*(bool *)field(dst, o) = *(const bool *)field_const(src, o);
		return 0;
	case CONFIG_SYSTEMS:
		*(unsigned *)field(dst, o) = *(const unsigned *)field_const(src, o);
		return 0;
	case CONFIG_LISTEN_ADDRESS:
		memcpy(field(dst, o), field_const(src, o), CONFIG_ADDRESS_MAX);
		return 0;
	case CONFIG_STRING: {
		const char *text = *(char *const *)field_const(src, o);
		char *copy = strdup(text ? text : "");
		if (!copy)
			return -1;
		free(*(char **)field(dst, o));
		*(char **)field(dst, o) = copy;
		return 0;
	}
	}
	return -1;
}

int config_apply_reload(struct config *running, const struct config *fresh)
{
	int ignored = 0;

	for (const struct config_option *o = config_options; o->name; o++) {
		char *old_text, *new_text;

		if (o->reloadable) {
			if (copy_value(running, fresh, o) < 0)
				log_error("reload: %s: out of memory; keeping the current value", o->name);
			continue;
		}
		/*
		 * Compared as printed, as an operator reads them: a DSN that differs only in its
		 * password prints the same and is not reported.
		 */
		old_text = config_value_text(running, o);
		new_text = config_value_text(fresh, o);
		if (old_text && new_text && strcmp(old_text, new_text) != 0) {
			log_warning("reload: %s cannot change while running (restart to apply)", o->name);
			ignored++;
		}
		free(old_text);
		free(new_text);
	}
	return ignored;
}
