/*
 * u-log: the log module against lib/log.h.  stderr is pointed (dup2) at a
 * scratch file so that each check reads back exactly what was printed:
 * level filtering, the "prog: error: msg" line, errno preserved (also when
 * the write itself fails), one line per message from several threads.
 * The test's own output goes to stdout (TAP), which is never redirected.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define THREADS 4
#define LINES_PER_THREAD 300

static char scratch[] = "/var/tmp/u-log.XXXXXX";
static char cap_path[64];
static int saved_stderr = -1;
static char cap[1 << 18];

/* Empty the capture file (stderr's offset back to 0). */
static void cap_reset(void)
{
	if (ftruncate(STDERR_FILENO, 0) < 0 || lseek(STDERR_FILENO, 0, SEEK_SET) < 0)
		ok(0, "reset the capture file");
}

/* What has been printed since the last reset, NUL-terminated in cap. */
static const char *cap_read(void)
{
	int fd = open(cap_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, cap, sizeof(cap) - 1);

	if (fd >= 0)
		close(fd);
	cap[n > 0 ? n : 0] = '\0';
	return cap;
}

/* The capture as one printable line for a TAP description. */
static const char *shown(void)
{
	static char out[256];
	size_t o = 0;

	for (const char *p = cap; *p != '\0' && o + 3 < sizeof(out); p++) {
		if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	return out;
}

/* One check: the capture is exactly want. */
static void printed(const char *want, const char *what)
{
	cap_read();
	ok(strcmp(cap, want) == 0, "%s (got \"%s\")", what, shown());
}

static void test_default_and_levels(void)
{
	ok(log_get_level() == LOG_INFO, "default level is LOG_INFO (got %d)", (int)log_get_level());

	cap_reset();
	log_err("disk %s failed", "sda");
	printed("volmig: error: disk sda failed\n", "default prefix: \"volmig: error: ...\"");

	log_set_prog("prog");
	cap_reset();
	log_err("msg");
	printed("prog: error: msg\n", "log_err: \"prog: error: msg\"");
	cap_reset();
	log_msg(LOG_ERR, "%d regions, %s", 42, "dirty");
	printed("prog: error: 42 regions, dirty\n", "log_msg formats its arguments");

	/* LOG_INFO: err, warn, info pass; debug is dropped */
	cap_reset();
	log_warn("w-line");
	cap_read();
	ok(strncmp(cap, "prog: ", 6) == 0 && strstr(cap, "w-line\n") != NULL &&
		   strchr(cap, '\n') == cap + strlen(cap) - 1,
	   "LOG_INFO level: a warning is printed as one line (got \"%s\")", shown());
	cap_reset();
	log_info("i-line");
	cap_read();
	ok(strncmp(cap, "prog: ", 6) == 0 && strstr(cap, "i-line\n") != NULL,
	   "LOG_INFO level: info is printed (got \"%s\")", shown());
	cap_reset();
	log_debug("d-line");
	printed("", "LOG_INFO level: debug is dropped");

	log_set_level(LOG_ERR);
	ok(log_get_level() == LOG_ERR, "log_set_level(LOG_ERR) reads back");
	cap_reset();
	log_warn("w2");
	log_info("i2");
	log_debug("d2");
	printed("", "LOG_ERR level: warning, info and debug dropped");
	log_err("e2");
	printed("prog: error: e2\n", "LOG_ERR level: errors still printed");

	log_set_level(LOG_WARN);
	cap_reset();
	log_info("i3");
	log_debug("d3");
	log_warn("w3");
	cap_read();
	ok(strstr(cap, "w3\n") != NULL && strstr(cap, "i3") == NULL && strstr(cap, "d3") == NULL,
	   "LOG_WARN level: only the warning (got \"%s\")", shown());

	log_set_level(LOG_DEBUG);
	cap_reset();
	log_debug("d4");
	log_info("i4");
	cap_read();
	ok(strstr(cap, "d4\n") != NULL && strstr(cap, "i4\n") != NULL &&
		   strstr(cap, "d4\n") < strstr(cap, "i4\n"),
	   "LOG_DEBUG level: debug and info, in order (got \"%s\")", shown());
	log_set_level(LOG_INFO);
}

static void vwrap(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vwrap(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static void test_vmsg_and_long(void)
{
	char *big = malloc(5000);
	const char *out;

	cap_reset();
	vwrap(LOG_ERR, "v %s %u", "args", 7u);
	printed("prog: error: v args 7\n", "log_vmsg takes a va_list");

	if (big == NULL)
		return;
	memset(big, 'x', 4999);
	big[4999] = '\0';
	cap_reset();
	log_err("%s", big);
	out = cap_read();
	ok(strncmp(out, "prog: error: xxx", 16) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
	   "a 5000-byte message still gives one line ending in a newline (%zu bytes)", strlen(out));
	free(big);
}

static void test_errno(void)
{
	int devfull, e;

	cap_reset();
	errno = EXDEV;
	log_err("printed %s", "line");
	e = errno;
	printed("prog: error: printed line\n", "a message printed with errno set");
	ok(e == EXDEV, "errno preserved across a printed message (got %d)", e);
	errno = ENOTTY;
	log_debug("dropped");
	ok(errno == ENOTTY, "errno preserved across a dropped message (got %d)", errno);
	errno = 0;
	log_info("zero");
	ok(errno == 0, "errno 0 stays 0 (got %d)", errno);

	/* the write fails (ENOSPC): errno is still the caller's */
	devfull = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (devfull < 0) {
		skip("no /dev/full");
		return;
	}
	if (dup2(devfull, STDERR_FILENO) < 0) {
		ok(0, "dup2 /dev/full");
	} else {
		errno = EROFS;
		log_err("this write fails");
		ok(errno == EROFS, "errno preserved when the write itself fails (got %d)", errno);
	}
	close(devfull);
	devfull = open(cap_path, O_WRONLY | O_CLOEXEC);
	if (devfull < 0 || dup2(devfull, STDERR_FILENO) < 0)
		ok(0, "point stderr back at the capture file");
	if (devfull >= 0)
		close(devfull);
}

static void *log_lines(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;

	for (unsigned i = 0; i < LINES_PER_THREAD; i++)
		log_err("thread %u line %u %.*s", id, i, (int)((i * 37 + id * 11) % 200),
			"................................................................................"
			"................................................................................"
			"........................................");
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[THREADS];
	unsigned started = 0, lines = 0, bad = 0;
	unsigned seen[THREADS] = { 0 };
	char *p, *nl;

	cap_reset();
	for (unsigned i = 0; i < THREADS; i++) {
		if (pthread_create(&th[i], NULL, log_lines, (void *)(uintptr_t)i) != 0)
			break;
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	cap_read();
	for (p = cap; *p != '\0'; p = nl + 1) {
		unsigned id, n;
		int used = 0;

		nl = strchr(p, '\n');
		if (nl == NULL) {
			bad++;
			break;
		}
		*nl = '\0';
		lines++;
		if (sscanf(p, "prog: error: thread %u line %u %n", &id, &n, &used) != 2 || used == 0 ||
		    id >= THREADS || n != seen[id] ||
		    strspn(p + used, ".") != strlen(p + used) ||
		    strlen(p + used) != (n * 37 + id * 11) % 200) {
			bad++;
			continue;
		}
		seen[id]++;
	}
	ok(started == THREADS && lines == THREADS * LINES_PER_THREAD && bad == 0,
	   "%u threads x %d messages: every line whole and in each thread's order (%u lines, %u bad)",
	   started, LINES_PER_THREAD, lines, bad);
}

int main(void)
{
	int fd;

	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return tap_done();
	}
	snprintf(cap_path, sizeof(cap_path), "%s/stderr", scratch);
	fd = open(cap_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	saved_stderr = dup(STDERR_FILENO);
	if (fd < 0 || saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0) {
		ok(0, "point stderr at %s", cap_path);
		goto out;
	}
	close(fd);
	fd = -1;
	test_default_and_levels();
	test_vmsg_and_long();
	test_errno();
	test_threads();
out:
	if (saved_stderr >= 0) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
	}
	if (fd >= 0)
		close(fd);
	unlink(cap_path);
	rmdir(scratch);
	return tap_done();
}
