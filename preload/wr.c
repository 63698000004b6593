/*
 * wr: the write family.  Every write to a source goes through ROUTED: in the
 * committed state straight to the target; otherwise counted in flight and
 * its regions' intent made durable (shim_track_begin), written to the
 * source, and in the mirrored states (synced, switched) the same bytes
 * written to the target (shim_mirror; see route.c).
 *
 * Positional writes are tracked at their offset; write/writev at the
 * current offset take a per-fd stripe lock so that the offset read and the
 * write are one step for every thread of the process (O_APPEND: the end of
 * the file).  fallocate punch/zero, copy_file_range into a source and the
 * discard/zero-out ioctls are tracked as writes of their range and mirrored
 * by copying the range.  ftruncate and truncate change a file source's
 * length: tracked as a write from the lower of the old and new ends to the
 * end of what the session tracks, and mirrored by cutting or growing a file
 * target to the same length.  sendfile and splice into a source are done
 * with read and the tracked writes (the kernel's own would be unseen).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ctl.h"
#include "crash.h"
#include "shim.h"

#define STRIPES 64
static pthread_mutex_t stripe[STRIPES] = { [0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER };

/*
 * Route a write of len bytes at off to fd.  call writes the source as the
 * program asked; tcall writes the target instead (it may use tfd_); iov_/
 * cnt_ describe the bytes for mirroring (NULL: copy the range from the
 * source).  The value is the call's, errno as it left it.  A write that went
 * to the source is mirrored when the state after it is mirrored or
 * committed: a commit announced while the write was in flight must not
 * leave its bytes on the source only.  ROUTED_RWF: the mirrored copy keeps
 * the write's RWF_DSYNC/RWF_SYNC (rwf_).
 */
#define ROUTED(fd, off, len, iov_, cnt_, call, tcall) ROUTED_RWF(fd, off, len, iov_, cnt_, 0, call, tcall)
#define ROUTED_RWF(fd, off, len, iov_, cnt_, rwf_, call, tcall)                          \
	({                                                                               \
		ssize_t r_;                                                              \
		int p_ = shim_fd_tracked(fd);                                            \
		enum shim_route route_ = p_ >= 0 ? shim_write_route() : SHIM_SOURCE;     \
		if (p_ == -1) {                                                          \
			r_ = (call);                                                     \
		} else if (route_ == SHIM_TARGET) {                                      \
			int tfd_ = shim_target_fd(p_, (fd));                             \
			if (tfd_ < 0) {                                                  \
				errno = -tfd_;                                           \
				r_ = -1;                                                 \
			} else {                                                         \
				r_ = (tcall);                                            \
			}                                                                \
		} else {                                                                 \
			struct shim_track t_;                                            \
			int rc_;                                                         \
			if (route_ == SHIM_MIRROR) {                                     \
				shim_barrier_wait();                                     \
				CRASH_POINT("shim.barrier.after");                       \
			}                                                                \
			rc_ = p_ >= 0 ? shim_track_pair(p_, (off), (len), &t_)           \
				      : shim_track_begin((fd), (off), (len), &t_);       \
			if (rc_ < 0) {                                                   \
				errno = -rc_;                                            \
				r_ = -1;                                                 \
			} else {                                                         \
				if (t_.active)                                           \
					CRASH_POINT("shim.source-write.before");         \
				r_ = (call);                                             \
				int e_ = errno;                                          \
				if (r_ > 0 && t_.active && t_.hold < 0 &&                \
				    shim_write_route() != SHIM_SOURCE) {                 \
					int m_ = shim_mirror((int)t_.pair, (fd), (iov_), \
							     (cnt_), (off), (uint64_t)r_, \
							     (rwf_));                      \
					if (m_ < 0) {                                    \
						e_ = -m_;                                \
						r_ = -1;                                 \
					}                                                \
				}                                                        \
				if (t_.active) {                                         \
					CRASH_POINT("shim.source-write.after");          \
					shim_track_end(&t_);                             \
				}                                                        \
				errno = e_;                                              \
			}                                                                \
		}                                                                        \
		r_;                                                                      \
	})

/* One-element iovec for the plain calls. */
#define IOV1(buf, n) ((const struct iovec[]){ { .iov_base = (void *)(buf), .iov_len = (n) } })

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pwrite)(fd, buf, n, off);
	return ROUTED(fd, (uint64_t)off, n, IOV1(buf, n), 1, REAL(pwrite)(fd, buf, n, off),
		      REAL(pwrite)(tfd_, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pwrite64)(fd, buf, n, off);
	return ROUTED(fd, (uint64_t)off, n, IOV1(buf, n), 1, REAL(pwrite64)(fd, buf, n, off),
		      REAL(pwrite64)(tfd_, buf, n, off));
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(pwritev)(fd, iov, cnt, off);
	return ROUTED(fd, (uint64_t)off, shim_iov_len(iov, cnt), iov, cnt,
		      REAL(pwritev)(fd, iov, cnt, off), REAL(pwritev)(tfd_, iov, cnt, off));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(pwritev64)(fd, iov, cnt, off);
	return ROUTED(fd, (uint64_t)off, shim_iov_len(iov, cnt), iov, cnt,
		      REAL(pwritev64)(fd, iov, cnt, off), REAL(pwritev64)(tfd_, iov, cnt, off));
}

/* Where a write at the current offset of fd will land; caller holds its
 * stripe.  With append (O_APPEND or RWF_APPEND), the end of the file the
 * write goes to: the target's in the committed state.  -1 when unknown
 * (the caller then tracks from 0 to the end). */
static off_t current_offset(int fd, bool append, int pair)
{
	struct stat st;
	int tfd;

	if (append || shim_fd_append(fd)) {
		if (pair >= 0 && shim_write_route() == SHIM_TARGET &&
		    (tfd = shim_target_fd(pair, fd)) >= 0)
			fd = tfd;
		if (fstat(fd, &st) < 0)
			return -1;
		return st.st_size;
	}
	return lseek(fd, 0, SEEK_CUR);
}

/* After a write at the current offset went to the target instead: move the
 * source fd's offset as the write would have. */
static ssize_t advance(int fd, off_t at, ssize_t r)
{
	if (r > 0) {
		int saved = errno;

		lseek(fd, at + r, SEEK_SET);
		errno = saved;
	}
	return r;
}

/* A write at the current offset (write, writev, pwritev2 with offset -1). */
#define AT_CURRENT(fd, len, append, iov_, cnt_, call, tcall)                             \
	AT_CURRENT_RWF(fd, len, append, iov_, cnt_, 0, call, tcall)
#define AT_CURRENT_RWF(fd, len, append, iov_, cnt_, rwf_, call, tcall)                   \
	({                                                                               \
		ssize_t ac_r_;                                                           \
		int ac_p_ = shim_fd_tracked(fd);                                         \
		if (ac_p_ == -1) {                                                       \
			ac_r_ = (call);                                                  \
		} else {                                                                 \
			pthread_mutex_t *ac_m_ = &stripe[(unsigned)(fd) % STRIPES];      \
			int ac_saved_ = errno;                                           \
			off_t at;                                                        \
			pthread_mutex_lock(ac_m_);                                       \
			shim_busy++;                                                     \
			at = current_offset(fd, append, ac_p_);                          \
			shim_busy--;                                                     \
			errno = ac_saved_;                                               \
			if (at < 0) /* unknown: the whole volume */                      \
				ac_r_ = ROUTED(fd, 0, SHIM_TO_END, NULL, 0, (call),       \
					       (errno = ESPIPE, -1));                    \
			else                                                             \
				ac_r_ = ROUTED_RWF(fd, (uint64_t)at, (len), (iov_),       \
						   (cnt_), (rwf_), (call),               \
						   advance(fd, at, (tcall)));            \
			pthread_mutex_unlock(ac_m_);                                     \
		}                                                                        \
		ac_r_;                                                                   \
	})

ssize_t write(int fd, const void *buf, size_t n)
{
	if (shim_busy)
		return REAL(write)(fd, buf, n);
	return AT_CURRENT(fd, n, false, IOV1(buf, n), 1, REAL(write)(fd, buf, n),
			  REAL(pwrite)(tfd_, buf, n, at));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (shim_busy || cnt < 0)
		return REAL(writev)(fd, iov, cnt);
	return AT_CURRENT(fd, shim_iov_len(iov, cnt), false, iov, cnt, REAL(writev)(fd, iov, cnt),
			  REAL(pwritev)(tfd_, iov, cnt, at));
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(pwritev2)(fd, iov, cnt, off, flags);
	if (off == -1 || (flags & RWF_APPEND))
		return AT_CURRENT_RWF(fd, shim_iov_len(iov, cnt), (flags & RWF_APPEND) != 0, iov,
				      cnt, flags, REAL(pwritev2)(fd, iov, cnt, off, flags),
				      REAL(pwritev2)(tfd_, iov, cnt, at, flags & ~RWF_APPEND));
	if (off < 0)
		return REAL(pwritev2)(fd, iov, cnt, off, flags);
	return ROUTED_RWF(fd, (uint64_t)off, shim_iov_len(iov, cnt), iov, cnt, flags,
			  REAL(pwritev2)(fd, iov, cnt, off, flags),
			  REAL(pwritev2)(tfd_, iov, cnt, off, flags));
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
	if (off == -1 || (flags & RWF_APPEND))
		return AT_CURRENT_RWF(fd, shim_iov_len(iov, cnt), (flags & RWF_APPEND) != 0, iov,
				      cnt, flags, REAL(pwritev64v2)(fd, iov, cnt, off, flags),
				      REAL(pwritev64v2)(tfd_, iov, cnt, at, flags & ~RWF_APPEND));
	if (off < 0)
		return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
	return ROUTED_RWF(fd, (uint64_t)off, shim_iov_len(iov, cnt), iov, cnt, flags,
			  REAL(pwritev64v2)(fd, iov, cnt, off, flags),
			  REAL(pwritev64v2)(tfd_, iov, cnt, off, flags));
}

/* fallocate: punching, zeroing and shifting change data; plain allocation
 * changes none, except that without KEEP_SIZE past the end it makes the
 * file longer (zeros from the old end on: tracked from there, mirrored by
 * copying those zeros, so a target file gets the same length).  Once
 * committed every call on a source goes to the target (nonzero span). */
static uint64_t fallocate_span(int fd, int mode, off_t off, off_t len, uint64_t *start)
{
	struct stat st;
	int saved = errno, rc;

	*start = (uint64_t)off;
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		return UINT64_MAX; /* everything from off on moves */
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return (uint64_t)len;
	if (shim_fd_tracked(fd) == -1)
		return 0;
	if (shim_write_route() == SHIM_TARGET)
		return (uint64_t)len; /* committed: whatever it does, to the target */
	if (mode & FALLOC_FL_KEEP_SIZE)
		return 0;
	shim_busy++;
	rc = fstat(fd, &st);
	shim_busy--;
	errno = saved;
	if (rc < 0 || !S_ISREG(st.st_mode) || (uint64_t)off + (uint64_t)len <= (uint64_t)st.st_size)
		return 0;
	if ((uint64_t)st.st_size < *start)
		*start = (uint64_t)st.st_size;
	return (uint64_t)off + (uint64_t)len - *start;
}

/* fallocate's result as a byte count for ROUTED (0 -> len, so that it
 * mirrors; -1 stays -1), and back. */
static ssize_t fa_bytes(int r, uint64_t span)
{
	return r == 0 ? (ssize_t)(span > SSIZE_MAX ? SSIZE_MAX : span) : -1;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	uint64_t start, span;

	if (shim_busy || off < 0 || len <= 0)
		return REAL(fallocate)(fd, mode, off, len);
	span = fallocate_span(fd, mode, off, len, &start);
	if (span == 0)
		return REAL(fallocate)(fd, mode, off, len);
	return ROUTED(fd, start, span, NULL, 0, fa_bytes(REAL(fallocate)(fd, mode, off, len), span),
		      fa_bytes(REAL(fallocate)(tfd_, mode, off, len), span)) < 0 ? -1 : 0;
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	uint64_t start, span;

	if (shim_busy || off < 0 || len <= 0)
		return REAL(fallocate64)(fd, mode, off, len);
	span = fallocate_span(fd, mode, off, len, &start);
	if (span == 0)
		return REAL(fallocate64)(fd, mode, off, len);
	return ROUTED(fd, start, span, NULL, 0,
		      fa_bytes(REAL(fallocate64)(fd, mode, off, len), span),
		      fa_bytes(REAL(fallocate64)(tfd_, mode, off, len), span)) < 0 ? -1 : 0;
}

/* posix_fallocate returns an error number; glibc does the allocation with
 * its own system call (or by writing), which no wrapper sees: it is a plain
 * fallocate past the end here. */
static ssize_t pf_bytes(int r, uint64_t span)
{
	if (r == 0)
		return (ssize_t)(span > SSIZE_MAX ? SSIZE_MAX : span);
	errno = r;
	return -1;
}

#define POSIX_FALLOCATE(real, fd, off, len)                                              \
	({                                                                               \
		uint64_t pf_start, pf_span;                                              \
		ssize_t pf_r;                                                            \
		int pf_saved = errno;                                                    \
		if (shim_busy || (off) < 0 || (len) <= 0)                                \
			return real((fd), (off), (len));                                 \
		pf_span = fallocate_span((fd), 0, (off), (len), &pf_start);              \
		if (pf_span == 0)                                                        \
			return real((fd), (off), (len));                                 \
		pf_r = ROUTED((fd), pf_start, pf_span, NULL, 0,                          \
			      pf_bytes(real((fd), (off), (len)), pf_span),               \
			      pf_bytes(real(tfd_, (off), (len)), pf_span));              \
		int pf_e = pf_r < 0 ? errno : 0;                                         \
		errno = pf_saved;                                                        \
		pf_e;                                                                    \
	})

int posix_fallocate(int fd, off_t off, off_t len)
{
	return POSIX_FALLOCATE(REAL(posix_fallocate), fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
	return POSIX_FALLOCATE(REAL(posix_fallocate64), fd, off, len);
}

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len,
			unsigned flags)
{
	if (shim_busy || shim_fd_tracked(out) == -1)
		return REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
	if (out_off != NULL) {
		off_t o = *out_off;

		return ROUTED(out, (uint64_t)o, len, NULL, 0,
			      REAL(copy_file_range)(in, in_off, out, out_off, len, flags),
			      REAL(copy_file_range)(in, in_off, tfd_, out_off, len, flags));
	}
	return AT_CURRENT(out, len, false, NULL, 0,
			  REAL(copy_file_range)(in, in_off, out, out_off, len, flags),
			  REAL(copy_file_range)(in, in_off, tfd_, &(off_t){ at }, len, flags));
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
		uint64_t span = range[1];

		return ROUTED(fd, range[0], span, NULL, 0,
			      fa_bytes(REAL(ioctl)(fd, req, arg), span),
			      fa_bytes(REAL(ioctl)(tfd_, req, arg), span)) < 0 ? -1 : 0;
	}
	return REAL(ioctl)(fd, req, arg);
}

/*
 * A change of fd's length to len through real (ftruncate or ftruncate64).
 * The regions from the lower of the two ends to the session's capacity
 * change (or may, when another thread moves the end meanwhile): they are
 * tracked as one write, so the copier copies them again and cuts its
 * target back; mirrored, the target gets the same length at once.
 */
static int truncate_fd(int fd, off_t len, int (*real)(int, off_t))
{
	int p = shim_fd_tracked(fd), r, e, rc;
	enum shim_route route = p >= 0 ? shim_write_route() : SHIM_SOURCE;
	uint64_t from = (uint64_t)len;
	struct shim_track t;
	struct stat st;

	if (p == -1)
		return real(fd, len);
	if (route == SHIM_TARGET) {
		int tfd = shim_target_fd(p, fd);

		if (tfd < 0) {
			errno = -tfd;
			return -1;
		}
		return real(tfd, len);
	}
	e = errno;
	shim_busy++;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < from)
		from = (uint64_t)st.st_size;
	shim_busy--;
	errno = e;
	if (route == SHIM_MIRROR)
		shim_barrier_wait();
	rc = p >= 0 ? shim_track_pair(p, from, SHIM_TO_END, &t)
		    : shim_track_begin(fd, from, SHIM_TO_END, &t);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	if (t.active && t.hold < 0 && (uint64_t)len > shim_ctl()->hdr->pairs[t.pair].size)
		shim_past_capacity((int)t.pair);
	if (t.active)
		CRASH_POINT("shim.source-write.before");
	r = real(fd, len);
	e = errno;
	if (r == 0 && t.active && t.hold < 0 && shim_write_route() != SHIM_SOURCE) {
		rc = shim_mirror_truncate((int)t.pair, fd, from, (uint64_t)len);
		if (rc < 0) {
			e = -rc;
			r = -1;
		}
	}
	if (t.active)
		shim_track_end(&t);
	errno = e;
	return r;
}

int ftruncate(int fd, off_t len)
{
	if (shim_busy || len < 0)
		return REAL(ftruncate)(fd, len);
	return truncate_fd(fd, len, REAL(ftruncate));
}

int ftruncate64(int fd, off_t len)
{
	if (shim_busy || len < 0)
		return REAL(ftruncate64)(fd, len);
	return truncate_fd(fd, len, REAL(ftruncate64));
}

/* truncate by path: through an fd of the file, so that a source is seen
 * whatever path names it. */
static int truncate_path(const char *path, off_t len, int (*real)(const char *, off_t))
{
	int fd, r, e;

	shim_busy++;
	fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	shim_busy--;
	if (fd < 0)
		return real(path, len); /* its own error, or not ours to see */
	r = shim_fd_tracked(fd) == -1 ? real(path, len) : truncate_fd(fd, len, REAL(ftruncate));
	e = errno;
	shim_busy++;
	close(fd);
	shim_busy--;
	shim_fd_forget(fd);
	errno = e;
	return r;
}

int truncate(const char *path, off_t len)
{
	if (shim_busy || len < 0)
		return REAL(truncate)(path, len);
	return truncate_path(path, len, REAL(truncate));
}

int truncate64(const char *path, off_t len)
{
	if (shim_busy || len < 0)
		return REAL(truncate64)(path, len);
	return truncate_path(path, len, REAL(truncate64));
}

/*
 * sendfile and splice into a source: the kernel would write the file with no
 * call the shim sees, so the bytes are moved here instead, through read and
 * the tracked write family (I8: never an untracked write).  Returns what the
 * call would: bytes moved, or -1 with errno when nothing was.
 */
#define RELAY_BUF (64 * 1024)

static ssize_t relay(int out, off_t *out_off, int in, off_t *in_off, size_t count)
{
	char *buf = malloc(RELAY_BUF);
	size_t done = 0;
	int err = 0;

	if (buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	while (done < count) {
		size_t k = count - done < RELAY_BUF ? count - done : RELAY_BUF;
		ssize_t r = in_off != NULL ? pread(in, buf, k, *in_off) : read(in, buf, k);
		ssize_t w;

		if (r < 0 && errno == EINTR && done == 0)
			continue;
		if (r <= 0) {
			err = r < 0 ? errno : 0;
			break;
		}
		w = out_off != NULL ? pwrite(out, buf, (size_t)r, *out_off) : write(out, buf, (size_t)r);
		if (w < 0) {
			err = errno;
			w = 0;
		}
		if (w < r && in_off == NULL) {
			/* give back what was read and not written (a file; a pipe
			 * cannot take it back, as the kernel's own splice) */
			int saved = errno;
			(void)lseek(in, (off_t)(w - r), SEEK_CUR);
			errno = saved;
		}
		if (in_off != NULL)
			*in_off += w;
		if (out_off != NULL)
			*out_off += w;
		done += (size_t)w;
		if (w < r)
			break;
	}
	free(buf);
	if (done == 0 && err != 0) {
		errno = err;
		return -1;
	}
	return (ssize_t)done;
}

ssize_t sendfile(int out, int in, off_t *offset, size_t count)
{
	if (shim_busy || shim_fd_tracked(out) == -1)
		return REAL(sendfile)(out, in, offset, count);
	return relay(out, NULL, in, offset, count);
}

ssize_t sendfile64(int out, int in, off_t *offset, size_t count)
{
	if (shim_busy || shim_fd_tracked(out) == -1)
		return REAL(sendfile64)(out, in, offset, count);
	return relay(out, NULL, in, offset, count);
}

ssize_t splice(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned flags)
{
	if (shim_busy || shim_fd_tracked(out) == -1)
		return REAL(splice)(in, in_off, out, out_off, len, flags);
	return relay(out, out_off, in, in_off, len);
}
