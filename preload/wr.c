/*
 * wr: the write family.  Positional writes are tracked at their offset;
 * write/writev at the current offset take a per-fd stripe lock so that the
 * offset read and the write are one step for every thread of the process
 * (O_APPEND: the end of the file).  fallocate punch/zero, copy_file_range
 * into a source and the discard/zero-out ioctls are tracked as writes of
 * their range.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"
#include "crash.h"

#define STRIPES 64
static pthread_mutex_t stripe[STRIPES] = { [0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER };

/* Run a write through the tracker: begin, call, end; errno as the call left it. */
#define TRACKED(fd, off, len, call)                                                      \
	({                                                                               \
		struct shim_track t_;                                                    \
		ssize_t r_;                                                              \
		int rc_ = shim_track_begin((fd), (off), (len), &t_);                     \
		if (rc_ < 0) {                                                           \
			errno = -rc_;                                                    \
			r_ = -1;                                                         \
		} else {                                                                 \
			if (t_.active)                                                   \
				CRASH_POINT("shim.source-write.before");                 \
			r_ = (call);                                                     \
			if (t_.active) {                                                 \
				CRASH_POINT("shim.source-write.after");                  \
				int e_ = errno;                                          \
				shim_track_end(&t_);                                     \
				errno = e_;                                              \
			}                                                                \
		}                                                                        \
		r_;                                                                      \
	})

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pwrite)(fd, buf, n, off);
	return TRACKED(fd, (uint64_t)off, n, REAL(pwrite)(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pwrite64)(fd, buf, n, off);
	return TRACKED(fd, (uint64_t)off, n, REAL(pwrite64)(fd, buf, n, off));
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(pwritev)(fd, iov, cnt, off);
	return TRACKED(fd, (uint64_t)off, shim_iov_len(iov, cnt), REAL(pwritev)(fd, iov, cnt, off));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(pwritev64)(fd, iov, cnt, off);
	return TRACKED(fd, (uint64_t)off, shim_iov_len(iov, cnt),
		       REAL(pwritev64)(fd, iov, cnt, off));
}

/* Where a write at the current offset of fd will land; caller holds its
 * stripe.  -1 when unknown (the caller then tracks from 0 to the end). */
static off_t current_offset(int fd, bool append)
{
	struct stat st;

	if (append || (fcntl(fd, F_GETFL) & O_APPEND)) {
		if (fstat(fd, &st) < 0)
			return -1;
		return st.st_size;
	}
	return lseek(fd, 0, SEEK_CUR);
}

/* A write at the current offset (write, writev, pwritev2 with offset -1). */
#define AT_CURRENT(fd, len, append, call)                                                \
	({                                                                               \
		ssize_t ac_r_;                                                              \
		if (shim_fd_tracked(fd) == -1) {                                         \
			ac_r_ = (call);                                                     \
		} else {                                                                 \
			pthread_mutex_t *ac_m_ = &stripe[(unsigned)(fd) % STRIPES];         \
			int ac_saved_ = errno;                                              \
			off_t ac_at_;                                                       \
			pthread_mutex_lock(ac_m_);                                          \
			shim_busy++;                                                     \
			ac_at_ = current_offset(fd, append);                                \
			shim_busy--;                                                     \
			errno = ac_saved_;                                                  \
			if (ac_at_ < 0) /* unknown: the whole volume */                     \
				ac_r_ = TRACKED(fd, 0, UINT64_MAX, (call));                 \
			else                                                             \
				ac_r_ = TRACKED(fd, (uint64_t)ac_at_, (len), (call));          \
			pthread_mutex_unlock(ac_m_);                                        \
		}                                                                        \
		ac_r_;                                                                      \
	})

ssize_t write(int fd, const void *buf, size_t n)
{
	if (shim_busy)
		return REAL(write)(fd, buf, n);
	return AT_CURRENT(fd, n, false, REAL(write)(fd, buf, n));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (shim_busy || cnt < 0)
		return REAL(writev)(fd, iov, cnt);
	return AT_CURRENT(fd, shim_iov_len(iov, cnt), false, REAL(writev)(fd, iov, cnt));
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(pwritev2)(fd, iov, cnt, off, flags);
	if (off == -1 || (flags & RWF_APPEND))
		return AT_CURRENT(fd, shim_iov_len(iov, cnt), (flags & RWF_APPEND) != 0,
				  REAL(pwritev2)(fd, iov, cnt, off, flags));
	if (off < 0)
		return REAL(pwritev2)(fd, iov, cnt, off, flags);
	return TRACKED(fd, (uint64_t)off, shim_iov_len(iov, cnt),
		       REAL(pwritev2)(fd, iov, cnt, off, flags));
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
	if (off == -1 || (flags & RWF_APPEND))
		return AT_CURRENT(fd, shim_iov_len(iov, cnt), (flags & RWF_APPEND) != 0,
				  REAL(pwritev64v2)(fd, iov, cnt, off, flags));
	if (off < 0)
		return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
	return TRACKED(fd, (uint64_t)off, shim_iov_len(iov, cnt),
		       REAL(pwritev64v2)(fd, iov, cnt, off, flags));
}

/* fallocate: punching, zeroing and shifting change data; plain
 * allocation does not. */
static uint64_t fallocate_span(int fd, int mode, off_t off, off_t len, uint64_t *start)
{
	*start = (uint64_t)off;
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		return UINT64_MAX; /* everything from off on moves */
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return (uint64_t)len;
	(void)fd;
	return 0;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	uint64_t start, span;

	if (shim_busy || off < 0 || len <= 0)
		return REAL(fallocate)(fd, mode, off, len);
	span = fallocate_span(fd, mode, off, len, &start);
	if (span == 0)
		return REAL(fallocate)(fd, mode, off, len);
	return (int)TRACKED(fd, start, span, REAL(fallocate)(fd, mode, off, len));
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	uint64_t start, span;

	if (shim_busy || off < 0 || len <= 0)
		return REAL(fallocate64)(fd, mode, off, len);
	span = fallocate_span(fd, mode, off, len, &start);
	if (span == 0)
		return REAL(fallocate64)(fd, mode, off, len);
	return (int)TRACKED(fd, start, span, REAL(fallocate64)(fd, mode, off, len));
}

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len,
			unsigned flags)
{
	if (shim_busy || shim_fd_tracked(out) == -1)
		return REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
	if (out_off != NULL)
		return TRACKED(out, (uint64_t)*out_off, len,
			       REAL(copy_file_range)(in, in_off, out, out_off, len, flags));
	return AT_CURRENT(out, len, false, REAL(copy_file_range)(in, in_off, out, out_off, len, flags));
}

/* ioctl(2) is variadic in glibc's prototype; its third argument is a pointer
 * for every request that matters here. */
int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!shim_busy && arg != NULL &&
	    (req == BLKDISCARD || req == BLKZEROOUT || req == BLKSECDISCARD)) {
		const uint64_t *range = arg;

		return (int)TRACKED(fd, range[0], range[1], REAL(ioctl)(fd, req, arg));
	}
	return REAL(ioctl)(fd, req, arg);
}
