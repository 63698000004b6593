/*
 * fuzz.h: the driver every fuzz target shares, and the little helpers they
 * all use.  Include it once, from the target's .c, after defining
 * FUZZ_NAME; then define
 *
 *   static int fuzz_one(const uint8_t *data, size_t len);
 *
 * which runs the code under test on one input, asserts its contract with
 * FUZZ_CHECK (a failed check prints what broke and aborts, which is what
 * afl-fuzz records as a crash), and returns 1 when the code under test
 * accepted the input, 0 when it rejected it.
 *
 * The same source builds two ways:
 *
 *   - with afl-clang-fast (which defines __AFL_HAVE_MANUAL_CONTROL and
 *     __AFL_FUZZ_TESTCASE_LEN): without arguments the program is an AFL++
 *     persistent-mode target reading its inputs from shared memory;
 *   - with the normal compiler: a replay driver.
 *
 * Either build, given arguments, replays them: each argument is a file or a
 * directory (whose files are replayed in name order, dot files and README*
 * skipped; not recursive), "-" is stdin.  Every input is copied into a heap
 * buffer of exactly its size, so valgrind and ASan see any read past the end.
 * The replay prints one line "NAME: N inputs, A accepted, R rejected" (with
 * -v, one line per input first) and exits 0; a broken contract aborts naming
 * the input; an unreadable argument exits 2.
 */
#ifndef VOLMIG_FUZZ_H
#define VOLMIG_FUZZ_H

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fuzz_one(const uint8_t *data, size_t len);

/* The input being replayed, for the failure message. */
static const char *fuzz_input = "(afl)";

__attribute__((format(printf, 3, 4), noreturn, unused))
static void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: contract broken at %s:%d on input %s: ", FUZZ_NAME, file, line,
		fuzz_input);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

/* Assert one clause of the contract; on failure print it and abort. */
#define FUZZ_CHECK(cond, ...)                                                              \
	do {                                                                               \
		if (!(cond))                                                               \
			fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                        \
	} while (0)

/* Little-endian loads and stores, independent of lib/'s own. */
__attribute__((unused))
static uint64_t fz_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

__attribute__((unused))
static void fz_put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * A cursor over the fuzz input for targets that read it as a program of
 * operations.  Reads past the end yield zeros and set `end`.
 */
struct fz_in {
	const uint8_t *p;
	size_t len, pos;
	bool end;
};

__attribute__((unused))
static uint64_t fz_take(struct fz_in *in, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (in->pos >= in->len) {
			in->end = true;
			break;
		}
		v |= (uint64_t)in->p[in->pos++] << (8 * i);
	}
	return v;
}

/*
 * A number that reaches both small values and the edges of the 64-bit range
 * in few bytes: a tag byte, then 1, 2 or 8 bytes, or UINT64_MAX - 1 byte.
 */
__attribute__((unused))
static uint64_t fz_num(struct fz_in *in)
{
	switch (fz_take(in, 1) & 3) {
	case 0:
		return fz_take(in, 1);
	case 1:
		return fz_take(in, 2);
	case 2:
		return fz_take(in, 8);
	default:
		return UINT64_MAX - fz_take(in, 1);
	}
}

/* The replay driver. */
struct fz_replay {
	bool verbose;
	unsigned long inputs, accepted;
};

static int fz_read_fd(int fd, uint8_t **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap), *exact;

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			uint8_t *bigger = realloc(buf, cap * 2);

			if (bigger == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = -errno;

			free(buf);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	/* exactly n bytes, so that any read past the end is a heap overflow */
	exact = malloc(n ? n : 1);
	if (exact == NULL) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(exact, buf, n);
	free(buf);
	*out = exact;
	*len = n;
	return 0;
}

static int fz_replay_one(struct fz_replay *r, const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int fd, rc, acc;

	fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
		return -1;
	}
	rc = fz_read_fd(fd, &data, &len);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", FUZZ_NAME, path, strerror(-rc));
		return -1;
	}
	fuzz_input = path;
	acc = fuzz_one(data, len);
	free(data);
	r->inputs++;
	r->accepted += acc != 0;
	if (r->verbose)
		printf("%s: %s: %s\n", FUZZ_NAME, path, acc ? "accepted" : "rejected");
	return 0;
}

static int fz_skip_name(const struct dirent *d)
{
	return d->d_name[0] != '.' && strncmp(d->d_name, "README", 6) != 0;
}

static int fz_replay_arg(struct fz_replay *r, const char *path)
{
	struct dirent **names;
	struct stat st;
	int n, rc = 0;

	if (strcmp(path, "-") == 0)
		return fz_replay_one(r, path);
	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return fz_replay_one(r, path);
	n = scandir(path, &names, fz_skip_name, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *child;

		if (rc == 0 && asprintf(&child, "%s/%s", path, names[i]->d_name) >= 0) {
			if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
				rc = fz_replay_one(r, child);
			fuzz_input = "(none)";
			free(child);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int fz_replay_main(int argc, char **argv)
{
	struct fz_replay r = { 0 };
	int i = 1;

	if (i < argc && strcmp(argv[i], "-v") == 0) {
		r.verbose = true;
		i++;
	}
	if (i == argc) {
		if (fz_replay_one(&r, "-") < 0)
			return 2;
	}
	for (; i < argc; i++) {
		if (fz_replay_arg(&r, argv[i]) < 0)
			return 2;
	}
	printf("%s: %lu inputs, %lu accepted, %lu rejected\n", FUZZ_NAME, r.inputs, r.accepted,
	       r.inputs - r.accepted);
	return 0;
}

#if defined(__AFL_HAVE_MANUAL_CONTROL) && defined(__AFL_FUZZ_TESTCASE_LEN)
__AFL_FUZZ_INIT();

int main(int argc, char **argv)
{
	const uint8_t *shared;

	if (argc > 1)
		return fz_replay_main(argc, argv);
	__AFL_INIT();
	shared = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(100000)) {
		size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
		uint8_t *copy = malloc(len ? len : 1);

		if (copy == NULL)
			abort();
		memcpy(copy, shared, len);
		fuzz_one(copy, len);
		free(copy);
	}
	return 0;
}
#else
int main(int argc, char **argv)
{
	return fz_replay_main(argc, argv);
}
#endif

#endif
