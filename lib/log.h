/* log: the one logging module: levels, plain / journald-prefixed / JSON lines on stderr. */
#ifndef PASSPORT_LOG_H
#define PASSPORT_LOG_H

#include <stdbool.h>

/* Levels are syslog priorities, so journald prefixes are the level itself. */
enum log_level {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

enum log_format {
	LOG_FORMAT_AUTO = 0, /* journald prefixes when JOURNAL_STREAM is set, else plain */
	LOG_FORMAT_PLAIN,
	LOG_FORMAT_JOURNAL,
	LOG_FORMAT_JSON,
};

void log_setup(const char *program, enum log_level level, enum log_format format);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Parse "error", "warning", "notice", "info", "debug"; -1 when unknown. */
int log_level_from_name(const char *name);
const char *log_level_name(enum log_level level);
/* Parse "auto", "plain", "journal", "json"; -1 when unknown. */
int log_format_from_name(const char *name);

/* Write one line. Keeps errno. Use the macros, which check the level before formatting. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) do { if (log_enabled(LOG_LEVEL_ERROR)) log_write(LOG_LEVEL_ERROR, __VA_ARGS__); } while (0)
#define log_warning(...) do { if (log_enabled(LOG_LEVEL_WARNING)) log_write(LOG_LEVEL_WARNING, __VA_ARGS__); } while (0)
#define log_notice(...) do { if (log_enabled(LOG_LEVEL_NOTICE)) log_write(LOG_LEVEL_NOTICE, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_enabled(LOG_LEVEL_INFO)) log_write(LOG_LEVEL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_LEVEL_DEBUG)) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
