/*
 * log: the one place lib/ and the copier print diagnostics.
 *
 * Messages go to stderr prefixed with "volmig: " (or the program name set by
 * log_set_prog()).  lib/ code never prints except through here, so tests and
 * the shim can silence or redirect it.  Thread-safe: each message is one
 * write(2) of a fully formatted line.
 */
#ifndef VOLMIG_LOG_H
#define VOLMIG_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_ERR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* Set the prefix printed before every message (default "volmig"). */
void log_set_prog(const char *prog);

/* Messages above this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Print one line; a trailing newline is added.  errno is preserved. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
