/*
 * u-io: the full-length helpers against lib/io.h, with io_sys swapped for
 * fakes that follow a script: short transfers, EINTR, EIO, ENOSPC and
 * 0-byte writes.  The fakes pass the surviving calls to the real pread and
 * pwrite on a temporary file, so every check also reads the file back.
 * Single-threaded except the pipe reader of the io_write_str check.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define MAX_CALLS 4096

/* What the next call of a fake does. */
enum act {
	ACT_REAL = 0, /* pass through (the default once the script runs out) */
	ACT_SHORT,    /* pass through at most `limit` bytes */
	ACT_EINTR,    /* fail with EINTR, transfer nothing */
	ACT_EIO,      /* fail with EIO */
	ACT_ENOSPC,   /* fail with ENOSPC */
	ACT_ZERO,     /* return 0, transfer nothing */
};

static struct {
	enum act script[64];
	unsigned nscript;
	enum act rest;     /* what every call after the script does */
	size_t limit;      /* bytes per ACT_SHORT call */
	unsigned calls;    /* calls made */
	size_t lens[MAX_CALLS];
	off_t offs[MAX_CALLS];
	ssize_t rets[MAX_CALLS];
} fake;

static const struct io_sys real_sys = { pread, pwrite, fdatasync };
static char scratch[] = "/var/tmp/u-io.XXXXXX";
static char file_path[64];

static void fake_reset(enum act rest, size_t limit)
{
	memset(&fake, 0, sizeof(fake));
	fake.rest = rest;
	fake.limit = limit;
	io_sys = real_sys;
}

static void fake_script(unsigned n, const enum act *acts)
{
	memcpy(fake.script, acts, n * sizeof(*acts));
	fake.nscript = n;
}

/* The action for this call, after recording its arguments. */
static enum act fake_next(size_t len, off_t off)
{
	unsigned i = fake.calls++;

	if (i < MAX_CALLS) {
		fake.lens[i] = len;
		fake.offs[i] = off;
	}
	return i < fake.nscript ? fake.script[i] : fake.rest;
}

/* Errors and zero returns shared by the fakes; -2 when the call proceeds. */
static ssize_t fake_fail(enum act a)
{
	switch (a) {
	case ACT_EINTR:
		errno = EINTR;
		return -1;
	case ACT_EIO:
		errno = EIO;
		return -1;
	case ACT_ENOSPC:
		errno = ENOSPC;
		return -1;
	case ACT_ZERO:
		return 0;
	default:
		return -2;
	}
}

/* Remember what the call returned (for calls_contiguous). */
static ssize_t fake_ret(ssize_t r)
{
	if (fake.calls - 1 < MAX_CALLS)
		fake.rets[fake.calls - 1] = r;
	return r;
}

static ssize_t fake_pread(int fd, void *buf, size_t len, off_t off)
{
	enum act a = fake_next(len, off);
	ssize_t r = fake_fail(a);

	if (r != -2)
		return fake_ret(r);
	if (a == ACT_SHORT && len > fake.limit)
		len = fake.limit;
	return fake_ret(pread(fd, buf, len, off));
}

static ssize_t fake_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	enum act a = fake_next(len, off);
	ssize_t r = fake_fail(a);

	if (r != -2)
		return fake_ret(r);
	if (a == ACT_SHORT && len > fake.limit)
		len = fake.limit;
	return fake_ret(pwrite(fd, buf, len, off));
}

/* Stands in for fdatasync. */
static int fake_sync(int fd)
{
	ssize_t r = fake_fail(fake_next(0, 0));

	if (r != -2)
		return (int)r;
	return fdatasync(fd);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

/* A fresh file of `size` bytes of zeros; its fd, or -1. */
static int fresh_file(off_t size)
{
	int fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd >= 0 && ftruncate(fd, size) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Bytes [off, off + n) of the file equal want (read with the real pread). */
static int file_has(int fd, const uint8_t *want, size_t n, off_t off)
{
	uint8_t *got = malloc(n ? n : 1);
	int same;

	if (got == NULL)
		return 0;
	same = pread(fd, got, n, off) == (ssize_t)n && memcmp(got, want, n) == 0;
	free(got);
	return same;
}

/* Each call asked for the rest of the transfer, at the offset where the
 * bytes moved so far end. */
static int calls_contiguous(size_t len, off_t off)
{
	size_t done = 0;

	for (unsigned i = 0; i < fake.calls && i < MAX_CALLS; i++) {
		if (fake.offs[i] != off + (off_t)done || fake.lens[i] != len - done)
			return 0;
		if (fake.rets[i] > 0)
			done += (size_t)fake.rets[i];
	}
	return 1;
}

static void test_pwrite(void)
{
	enum { LEN = 4096 + 13, OFF = 100 };
	uint8_t *buf = malloc(LEN);
	int fd = fresh_file(0), rc;

	if (buf == NULL || fd < 0) {
		ok(0, "scratch file and buffer");
		goto out;
	}
	fill(buf, LEN, 1);

	/* short writes of at most 7 bytes each */
	fake_reset(ACT_SHORT, 7);
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == 0, "pwrite_full through 7-byte writes: 0 (rc %d)", rc);
	ok(fake.calls == (LEN + 6) / 7, "  took %u calls (want %u)", fake.calls, (LEN + 6) / 7);
	ok(calls_contiguous(LEN, OFF), "  each call continued where the last stopped");
	ok(file_has(fd, buf, LEN, OFF), "  the data landed at offset %d", OFF);

	/* EINTR, EINTR, then a full write */
	fill(buf, LEN, 2);
	fake_reset(ACT_REAL, 0);
	fake_script(2, (enum act[]){ ACT_EINTR, ACT_EINTR });
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == 0 && fake.calls == 3, "pwrite_full after EINTR twice: 0 in 3 calls (rc %d, %u calls)",
	   rc, fake.calls);
	ok(file_has(fd, buf, LEN, OFF), "  the data landed");

	/* a mix: short, EINTR, short, then the rest */
	fill(buf, LEN, 3);
	fake_reset(ACT_REAL, 1000);
	fake_script(4, (enum act[]){ ACT_SHORT, ACT_EINTR, ACT_SHORT, ACT_EINTR });
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == 0 && fake.calls == 5, "pwrite_full short/EINTR mix: 0 in 5 calls (rc %d, %u calls)", rc,
	   fake.calls);
	ok(calls_contiguous(LEN, OFF), "  each call continued where the last stopped");
	ok(file_has(fd, buf, LEN, OFF), "  the data landed");

	/* EIO at once, and after some progress */
	fake_reset(ACT_EIO, 0);
	io_sys.pwrite = fake_pwrite;
	errno = 0;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == -EIO && fake.calls == 1, "pwrite_full on EIO: -EIO at once (rc %d, %u calls)", rc,
	   fake.calls);
	ok(errno == EIO, "  errno left as the failing call set it (%d)", errno);
	fake_reset(ACT_EIO, 10);
	fake_script(2, (enum act[]){ ACT_SHORT, ACT_SHORT });
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == -EIO && fake.calls == 3, "pwrite_full on EIO after 20 bytes: -EIO (rc %d, %u calls)",
	   rc, fake.calls);
	fake_reset(ACT_ENOSPC, 0);
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == -ENOSPC, "pwrite_full on ENOSPC: -ENOSPC (rc %d)", rc);

	/* a write that makes no progress is an error, not a loop */
	fake_reset(ACT_ZERO, 0);
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == -EIO && fake.calls == 1, "pwrite_full on a 0-byte write: -EIO (rc %d, %u calls)", rc,
	   fake.calls);
	fake_reset(ACT_ZERO, 100);
	fake_script(2, (enum act[]){ ACT_SHORT, ACT_EINTR });
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, LEN, OFF);
	ok(rc == -EIO && fake.calls == 3, "pwrite_full on a 0-byte write after progress: -EIO (rc %d, %u calls)",
	   rc, fake.calls);

	/* nothing to write */
	fake_reset(ACT_EIO, 0);
	io_sys.pwrite = fake_pwrite;
	rc = io_pwrite_full(fd, buf, 0, OFF);
	ok(rc == 0, "pwrite_full of 0 bytes: 0 (rc %d)", rc);
out:
	io_sys = real_sys;
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void test_pread(void)
{
	enum { SIZE = 10000, LEN = 4096 + 13, OFF = 333 };
	uint8_t *data = malloc(SIZE), *buf = malloc(2 * SIZE);
	int fd = fresh_file(0);
	ssize_t n;

	if (data == NULL || buf == NULL || fd < 0) {
		ok(0, "scratch file and buffers");
		goto out;
	}
	fill(data, SIZE, 4);
	if (pwrite(fd, data, SIZE, 0) != SIZE) {
		ok(0, "fill the scratch file");
		goto out;
	}

	fake_reset(ACT_SHORT, 5);
	io_sys.pread = fake_pread;
	memset(buf, 0, LEN);
	n = io_pread_full(fd, buf, LEN, OFF);
	ok(n == LEN, "pread_full through 5-byte reads: %d (got %zd)", LEN, n);
	ok(fake.calls == (LEN + 4) / 5 && calls_contiguous(LEN, OFF),
	   "  %u calls, each continuing where the last stopped", fake.calls);
	ok(memcmp(buf, data + OFF, LEN) == 0, "  the bytes are the file's");

	fake_reset(ACT_REAL, 0);
	fake_script(3, (enum act[]){ ACT_EINTR, ACT_SHORT, ACT_EINTR });
	fake.limit = 17;
	io_sys.pread = fake_pread;
	memset(buf, 0, LEN);
	n = io_pread_full(fd, buf, LEN, OFF);
	ok(n == LEN && fake.calls == 4, "pread_full after EINTR/short/EINTR: %d in 4 calls (got %zd, %u calls)",
	   LEN, n, fake.calls);
	ok(memcmp(buf, data + OFF, LEN) == 0, "  the bytes are the file's");

	/* end of file: fewer bytes, not an error */
	fake_reset(ACT_SHORT, 7);
	io_sys.pread = fake_pread;
	n = io_pread_full(fd, buf, 2 * SIZE, 0);
	ok(n == SIZE, "pread_full past the end: the %d bytes there (got %zd)", SIZE, n);
	ok(n == SIZE && memcmp(buf, data, SIZE) == 0, "  the bytes are the file's");
	fake_reset(ACT_REAL, 0);
	io_sys.pread = fake_pread;
	n = io_pread_full(fd, buf, 100, SIZE + 50);
	ok(n == 0, "pread_full wholly past the end: 0 (got %zd)", n);

	fake_reset(ACT_EIO, 0);
	io_sys.pread = fake_pread;
	errno = 0;
	n = io_pread_full(fd, buf, LEN, 0);
	ok(n == -EIO && errno == EIO, "pread_full on EIO: -EIO, errno EIO (got %zd)", n);
	fake_reset(ACT_EIO, 64);
	fake_script(1, (enum act[]){ ACT_SHORT });
	io_sys.pread = fake_pread;
	n = io_pread_full(fd, buf, LEN, 0);
	ok(n == -EIO && fake.calls == 2, "pread_full on EIO after 64 bytes: -EIO (got %zd, %u calls)", n,
	   fake.calls);

	n = io_pread_full(fd, buf, 0, 0);
	ok(n == 0, "pread_full of 0 bytes: 0 (got %zd)", n);
out:
	io_sys = real_sys;
	if (fd >= 0)
		close(fd);
	free(data);
	free(buf);
}

static void test_sync(void)
{
	int fd = fresh_file(10), rc;

	if (fd < 0) {
		ok(0, "scratch file");
		return;
	}
	fake_reset(ACT_REAL, 0);
	fake_script(3, (enum act[]){ ACT_EINTR, ACT_EINTR, ACT_EINTR });
	io_sys.fdatasync = fake_sync;
	rc = io_fdatasync(fd);
	ok(rc == 0 && fake.calls == 4, "fdatasync after 3 EINTR: 0 in 4 calls (rc %d, %u calls)", rc,
	   fake.calls);
	fake_reset(ACT_EIO, 0);
	io_sys.fdatasync = fake_sync;
	rc = io_fdatasync(fd);
	ok(rc == -EIO && fake.calls == 1, "fdatasync on EIO: -EIO (rc %d)", rc);
	fake_reset(ACT_ENOSPC, 0);
	fake_script(1, (enum act[]){ ACT_EINTR });
	io_sys.fdatasync = fake_sync;
	rc = io_fdatasync(fd);
	ok(rc == -ENOSPC && fake.calls == 2, "fdatasync on EINTR then ENOSPC: -ENOSPC (rc %d)", rc);

	fake_reset(ACT_REAL, 0);
	fake_script(2, (enum act[]){ ACT_EINTR, ACT_EINTR });
	io_sys.fdatasync = fake_sync;
	rc = io_fdatasync(fd);
	ok(rc == 0 && fake.calls == 3, "fdatasync after 2 EINTR: 0 in 3 calls (rc %d, %u calls)", rc,
	   fake.calls);

	io_sys = real_sys;
	ok(io_fdatasync(fd) == 0, "real fdatasync of a file: 0");
	ok(io_fdatasync(-1) == -EBADF, "real fdatasync of fd -1: -EBADF");
	close(fd);
}

static void test_size(void)
{
	uint64_t sz = 12345;
	int fd = fresh_file(0), rc, p[2];

	if (fd < 0) {
		ok(0, "scratch file");
		return;
	}
	rc = io_size(fd, &sz);
	ok(rc == 0 && sz == 0, "io_size of an empty file: 0 (rc %d, %llu)", rc, (unsigned long long)sz);
	if (ftruncate(fd, (off_t)5 << 30) == 0) {
		rc = io_size(fd, &sz);
		ok(rc == 0 && sz == UINT64_C(5) << 30, "io_size of a sparse 5 GiB file (rc %d, %llu)", rc,
		   (unsigned long long)sz);
	} else {
		skip("cannot make a 5 GiB sparse file here");
	}
	if (ftruncate(fd, 4097) == 0) {
		rc = io_size(fd, &sz);
		ok(rc == 0 && sz == 4097, "io_size of a 4097-byte file (rc %d, %llu)", rc,
		   (unsigned long long)sz);
	}
	close(fd);
	ok(io_size(fd, &sz) == -EBADF, "io_size of a closed fd: -EBADF");
	if (pipe(p) == 0) {
		sz = 777;
		rc = io_size(p[0], &sz);
		ok(rc < 0, "io_size of a pipe fails (rc %d)", rc);
		close(p[0]);
		close(p[1]);
	}
}

/* The pipe's reader.  After each read it signals the writer, whose
 * handler does nothing and does not restart: a write blocked on the full
 * pipe returns short (or fails with EINTR), which io_write_str must
 * handle.  How often that happens does not matter to the check. */
struct drain {
	int fd;
	pthread_t writer;
	char *buf;
	size_t cap, len;
};

static void on_usr1(int sig)
{
	(void)sig;
}

static void *drain_pipe(void *arg)
{
	struct drain *d = arg;
	ssize_t n;

	while ((n = read(d->fd, d->buf + d->len, d->cap - d->len > 4096 ? 4096 : d->cap - d->len)) > 0) {
		d->len += (size_t)n;
		pthread_kill(d->writer, SIGUSR1);
	}
	return NULL;
}

static void test_write_str(void)
{
	enum { BIG = 300000 }; /* several pipe buffers: the write is cut short */
	struct drain d = { 0 };
	struct sigaction sa;
	pthread_t th;
	char *s = malloc(BIG + 1);
	int p[2] = { -1, -1 }, rc;

	d.buf = malloc(BIG + 16);
	d.cap = BIG + 16;
	if (s == NULL || d.buf == NULL || pipe(p) < 0) {
		ok(0, "pipe and buffers");
		goto out;
	}
	rc = io_write_str(p[1], "hello, pipe\n");
	ok(rc == 0, "io_write_str of a line to a pipe: 0 (rc %d)", rc);
	rc = io_write_str(p[1], "");
	ok(rc == 0, "io_write_str of an empty string: 0 (rc %d)", rc);
	ok(read(p[0], d.buf, 12) == 12 && memcmp(d.buf, "hello, pipe\n", 12) == 0,
	   "the line came out of the pipe");
	d.fd = p[0];
	for (size_t i = 0; i < BIG; i++)
		s[i] = (char)('a' + i % 26);
	s[BIG] = '\0';
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	d.writer = pthread_self();
	if (pthread_create(&th, NULL, drain_pipe, &d) != 0) {
		ok(0, "reader thread");
		goto out;
	}
	rc = io_write_str(p[1], s);
	close(p[1]);
	p[1] = -1;
	pthread_join(th, NULL);
	signal(SIGUSR1, SIG_IGN); /* any signal still pending is harmless */
	ok(rc == 0 && d.len == BIG && memcmp(d.buf, s, BIG) == 0,
	   "io_write_str of %d bytes through a pipe, interrupted by signals: all of them, in order (rc %d, %zu read)",
	   BIG, rc,
	   d.len);

	/* a pipe nobody reads from: -EPIPE (SIGPIPE ignored) */
	close(p[0]);
	p[0] = -1;
	if (pipe(p) == 0) {
		signal(SIGPIPE, SIG_IGN);
		close(p[0]);
		p[0] = -1;
		rc = io_write_str(p[1], "nobody hears this");
		ok(rc == -EPIPE, "io_write_str to a pipe without reader: -EPIPE (rc %d)", rc);
		signal(SIGPIPE, SIG_DFL);
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	free(s);
	free(d.buf);
}

int main(void)
{
	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return tap_done();
	}
	snprintf(file_path, sizeof(file_path), "%s/file", scratch);
	test_pwrite();
	test_pread();
	test_sync();
	test_size();
	test_write_str();
	unlink(file_path);
	rmdir(scratch);
	return tap_done();
}
