/* log: the one logging module: levels, plain / journald-prefixed / JSON lines on stderr. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

static const char *log_program = "passport";
static enum log_level log_level_current = LOG_LEVEL_INFO;
static enum log_format log_format_current = LOG_FORMAT_PLAIN;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",   [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",     [LOG_LEVEL_DEBUG] = "debug",
};

static bool log_json_priority_prefix; /* set by log_setup: JSON lines under journald */

void log_setup(const char *program, enum log_level level, enum log_format format)
{
	log_program = program;
	log_level_current = level;
	if (format == LOG_FORMAT_AUTO) {
		const char *journal = getenv("JOURNAL_STREAM");
		format = journal && *journal ? LOG_FORMAT_JOURNAL : LOG_FORMAT_PLAIN;
	}
	log_format_current = format;
	/*
	 * JSON lines under journald keep their priority: the "<N>" prefix journald reads (and strips)
	 * in front of the object, as the journal format does.
	 */
	{
		const char *journal = getenv("JOURNAL_STREAM");
		log_json_priority_prefix = journal && *journal;
	}
}

void log_set_level(enum log_level level)
{
	log_level_current = level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level_current;
}

int log_level_from_name(const char *name)
{
	for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++)
		if (name && strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG)
		return "unknown";
	return level_names[level];
}

int log_format_from_name(const char *name)
{
	static const char *const names[] = {"auto", "plain", "journal", "json"};
	for (int i = 0; i < 4; i++)
		if (name && strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	int saved_errno = errno;
	char message[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);

	switch (log_format_current) {
	case LOG_FORMAT_JOURNAL:
		fprintf(stderr, "<%d>%s\n", (int)level, message);
		break;
	case LOG_FORMAT_JSON: {
		struct timespec now;
		char stamp[64];
		struct tm tm;
		cJSON *line = cJSON_CreateObject();
		char *text;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
		cJSON_AddStringToObject(line, "time", stamp);
		cJSON_AddStringToObject(line, "level", log_level_name(level));
		cJSON_AddNumberToObject(line, "priority", (int)level);
		cJSON_AddStringToObject(line, "program", log_program);
		cJSON_AddStringToObject(line, "message", message);
		text = cJSON_PrintUnformatted(line);
		if (text && log_json_priority_prefix)
			fprintf(stderr, "<%d>%s\n", (int)level, text);
		else if (text)
			fprintf(stderr, "%s\n", text);
		cJSON_free(text);
		cJSON_Delete(line);
		break;
	}
	default: {
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		fprintf(stderr, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%s]: %s\n", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000,
			log_program, log_level_name(level), message);
		break;
	}
	}
	errno = saved_errno;
}
