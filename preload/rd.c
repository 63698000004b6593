/*
 * rd: the read family and the flushes, routed by the session's state (see
 * route.c): a read of a source goes to the target in the committed state,
 * and in the switched state wherever its regions are clean; fsync and
 * fdatasync of a source flush what the current state writes to; fstat,
 * stat by path and lseek from the end measure the target once committed.
 * While the state sends no read to a target (up to synced), a read is
 * passed on without looking its fd up (shim_reads_stay).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

/* The target fd to read [off, off + len) of fd from, or -1 for fd itself. */
static int read_fd(int fd, uint64_t off, uint64_t len)
{
	int pair = shim_source_pair(fd), tfd;

	if (pair < 0 || !shim_read_from_target(pair, off, len))
		return -1;
	tfd = shim_target_fd(pair, fd);
	return tfd; /* -errno: the caller fails the read */
}

#define ROUTED_READ(fd, off, len, call, tcall)                                           \
	({                                                                               \
		ssize_t r_;                                                              \
		int tfd_ = -1;                                                           \
		if (!shim_reads_stay(false)) {                                           \
			int saved_ = errno;                                              \
			tfd_ = read_fd((fd), (off), (len));                              \
			errno = saved_;                                                  \
		}                                                                        \
		if (tfd_ == -1)                                                          \
			r_ = (call);                                                     \
		else if (tfd_ < 0) {                                                     \
			errno = -tfd_;                                                   \
			r_ = -1;                                                         \
		} else                                                                   \
			r_ = (tcall);                                                    \
		r_;                                                                      \
	})

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pread)(fd, buf, n, off);
	return ROUTED_READ(fd, (uint64_t)off, n, REAL(pread)(fd, buf, n, off),
			   REAL(pread)(tfd_, buf, n, off));
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	if (shim_busy || off < 0)
		return REAL(pread64)(fd, buf, n, off);
	return ROUTED_READ(fd, (uint64_t)off, n, REAL(pread64)(fd, buf, n, off),
			   REAL(pread64)(tfd_, buf, n, off));
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (shim_busy || off < 0)
		return REAL(__pread_chk)(fd, buf, n, off, buflen);
	return ROUTED_READ(fd, (uint64_t)off, n, REAL(__pread_chk)(fd, buf, n, off, buflen),
			   REAL(__pread_chk)(tfd_, buf, n, off, buflen));
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (shim_busy || off < 0)
		return REAL(__pread64_chk)(fd, buf, n, off, buflen);
	return ROUTED_READ(fd, (uint64_t)off, n, REAL(__pread64_chk)(fd, buf, n, off, buflen),
			   REAL(__pread64_chk)(tfd_, buf, n, off, buflen));
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(preadv)(fd, iov, cnt, off);
	return ROUTED_READ(fd, (uint64_t)off, shim_iov_len(iov, cnt), REAL(preadv)(fd, iov, cnt, off),
			   REAL(preadv)(tfd_, iov, cnt, off));
}

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (shim_busy || off < 0 || cnt < 0)
		return REAL(preadv64)(fd, iov, cnt, off);
	return ROUTED_READ(fd, (uint64_t)off, shim_iov_len(iov, cnt),
			   REAL(preadv64)(fd, iov, cnt, off), REAL(preadv64)(tfd_, iov, cnt, off));
}

/* Reads at the current offset: redirected ones read the target at the
 * source fd's offset and move it on, under a stripe lock.  Once writes are
 * mirrored (synced) a read takes that lock too, even though it still reads
 * the source: another thread that already saw switched may be moving the
 * same offset by hand. */
static pthread_mutex_t rstripe[64] = { [0 ... 63] = PTHREAD_MUTEX_INITIALIZER };

#define AT_CURRENT_READ(fd, len, call, tcall)                                            \
	({                                                                               \
		ssize_t r_;                                                              \
		if (shim_reads_stay(true) || shim_source_pair(fd) < 0 ||                 \
		    shim_write_route() == SHIM_SOURCE) {                                 \
			r_ = (call);                                                     \
		} else {                                                                 \
			pthread_mutex_t *m_ = &rstripe[(unsigned)(fd) % 64];             \
			int saved_ = errno, tfd_;                                        \
			off_t at;                                                        \
			pthread_mutex_lock(m_);                                          \
			shim_busy++;                                                     \
			at = lseek((fd), 0, SEEK_CUR);                                   \
			shim_busy--;                                                     \
			errno = saved_;                                                  \
			tfd_ = at < 0 ? -1 : read_fd((fd), (uint64_t)at, (len));         \
			errno = saved_;                                                  \
			if (tfd_ == -1) {                                                \
				r_ = (call);                                             \
			} else if (tfd_ < 0) {                                           \
				errno = -tfd_;                                           \
				r_ = -1;                                                 \
			} else {                                                         \
				r_ = (tcall);                                            \
				if (r_ > 0) {                                            \
					int e_ = errno;                                  \
					lseek((fd), at + r_, SEEK_SET);                  \
					errno = e_;                                      \
				}                                                        \
			}                                                                \
			pthread_mutex_unlock(m_);                                        \
		}                                                                        \
		r_;                                                                      \
	})

ssize_t read(int fd, void *buf, size_t n)
{
	if (shim_busy)
		return REAL(read)(fd, buf, n);
	return AT_CURRENT_READ(fd, n, REAL(read)(fd, buf, n), REAL(pread)(tfd_, buf, n, at));
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (shim_busy)
		return REAL(__read_chk)(fd, buf, n, buflen);
	return AT_CURRENT_READ(fd, n, REAL(__read_chk)(fd, buf, n, buflen),
			       REAL(__pread_chk)(tfd_, buf, n, at, buflen));
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	if (shim_busy || cnt < 0)
		return REAL(readv)(fd, iov, cnt);
	return AT_CURRENT_READ(fd, shim_iov_len(iov, cnt), REAL(readv)(fd, iov, cnt),
			       REAL(preadv)(tfd_, iov, cnt, at));
}

ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(preadv2)(fd, iov, cnt, off, flags);
	if (off == -1)
		return AT_CURRENT_READ(fd, shim_iov_len(iov, cnt),
				       REAL(preadv2)(fd, iov, cnt, off, flags),
				       REAL(preadv2)(tfd_, iov, cnt, at, flags));
	if (off < 0)
		return REAL(preadv2)(fd, iov, cnt, off, flags);
	return ROUTED_READ(fd, (uint64_t)off, shim_iov_len(iov, cnt),
			   REAL(preadv2)(fd, iov, cnt, off, flags),
			   REAL(preadv2)(tfd_, iov, cnt, off, flags));
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (shim_busy || cnt < 0)
		return REAL(preadv64v2)(fd, iov, cnt, off, flags);
	if (off == -1)
		return AT_CURRENT_READ(fd, shim_iov_len(iov, cnt),
				       REAL(preadv64v2)(fd, iov, cnt, off, flags),
				       REAL(preadv64v2)(tfd_, iov, cnt, at, flags));
	if (off < 0)
		return REAL(preadv64v2)(fd, iov, cnt, off, flags);
	return ROUTED_READ(fd, (uint64_t)off, shim_iov_len(iov, cnt),
			   REAL(preadv64v2)(fd, iov, cnt, off, flags),
			   REAL(preadv64v2)(tfd_, iov, cnt, off, flags));
}

/* Flush what the current state writes to: the source (copying), both
 * (synced, switched), the target (committed). */
static int flush(int fd, int (*fn)(int))
{
	int pair = shim_source_pair(fd), tfd, rc;
	enum shim_route route;

	if (pair < 0 || (route = shim_write_route()) == SHIM_SOURCE)
		return fn(fd);
	tfd = shim_target_fd(pair, fd);
	if (tfd < 0) {
		errno = -tfd;
		return -1;
	}
	if (route == SHIM_TARGET)
		return fn(tfd);
	rc = fn(fd);
	if (rc == 0)
		rc = fn(tfd);
	return rc;
}

int fsync(int fd)
{
	if (shim_busy)
		return REAL(fsync)(fd);
	return flush(fd, REAL(fsync));
}

int fdatasync(int fd)
{
	if (shim_busy)
		return REAL(fdatasync)(fd);
	return flush(fd, REAL(fdatasync));
}

int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
	int pair, tfd, rc;
	enum shim_route route;

	if (shim_busy || (pair = shim_source_pair(fd)) < 0 ||
	    (route = shim_write_route()) == SHIM_SOURCE)
		return REAL(sync_file_range)(fd, off, n, flags);
	tfd = shim_target_fd(pair, fd);
	if (tfd < 0) {
		errno = -tfd;
		return -1;
	}
	if (route == SHIM_TARGET)
		return REAL(sync_file_range)(tfd, off, n, flags);
	rc = REAL(sync_file_range)(fd, off, n, flags);
	if (rc == 0)
		rc = REAL(sync_file_range)(tfd, off, n, flags);
	return rc;
}

/*
 * The length of a source in the committed state is its target's: fstat
 * reports the target's size, blocks and times (the identity stays the
 * source's, so classification is unchanged), and lseek from the end, or to
 * data or a hole, measures the target.  Other states pass through (the
 * lengths agree while mirrored).
 */
static int committed_target(int fd)
{
	const struct ctl *c = shim_ctl();
	int pair, tfd, saved = errno;

	if (c == NULL || shim_write_route() != SHIM_TARGET)
		return -1;
	shim_busy++;
	pair = shim_source_pair(fd);
	tfd = pair < 0 ? -1 : shim_target_fd(pair, fd);
	shim_busy--;
	errno = saved;
	return tfd < 0 ? -1 : tfd;
}

static void as_target(int tfd, struct stat *st)
{
	struct stat t;

	shim_busy++;
	if (REAL(fstat)(tfd, &t) == 0) {
		st->st_size = t.st_size;
		st->st_blocks = t.st_blocks;
		st->st_mtim = t.st_mtim;
		st->st_ctim = t.st_ctim;
	}
	shim_busy--;
}

int fstat(int fd, struct stat *st)
{
	int r = REAL(fstat)(fd, st), tfd;

	if (r == 0 && !shim_busy && (tfd = committed_target(fd)) >= 0)
		as_target(tfd, st);
	return r;
}

int fstat64(int fd, struct stat64 *st)
{
	int r = REAL(fstat64)(fd, st), tfd;

	if (r == 0 && !shim_busy && (tfd = committed_target(fd)) >= 0)
		as_target(tfd, (struct stat *)st);
	return r;
}

/*
 * stat by path (or by dir fd and path) of a file source in the committed
 * state: the target's size, blocks and times, as fstat.  The file is
 * known by its device and inode.
 */
static int committed_file_target(uint64_t dev, uint64_t ino)
{
	int pair, tfd = -1, saved = errno;

	if (shim_busy)
		return -1;
	shim_busy++;
	pair = shim_file_pair(dev, ino);
	if (pair >= 0 && shim_write_route() == SHIM_TARGET)
		tfd = shim_target_fd(pair, -1);
	shim_busy--;
	errno = saved;
	return tfd < 0 ? -1 : tfd;
}

static int path_stat_done(int r, struct stat *st)
{
	int tfd;

	if (r == 0 && S_ISREG(st->st_mode) &&
	    (tfd = committed_file_target((uint64_t)st->st_dev, (uint64_t)st->st_ino)) >= 0)
		as_target(tfd, st);
	return r;
}

int stat(const char *path, struct stat *st)
{
	return path_stat_done(REAL(stat)(path, st), st);
}

int stat64(const char *path, struct stat64 *st)
{
	return path_stat_done(REAL(stat64)(path, st), (struct stat *)st);
}

int lstat(const char *path, struct stat *st)
{
	return path_stat_done(REAL(lstat)(path, st), st);
}

int lstat64(const char *path, struct stat64 *st)
{
	return path_stat_done(REAL(lstat64)(path, st), (struct stat *)st);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return path_stat_done(REAL(fstatat)(dirfd, path, st, flags), st);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	return path_stat_done(REAL(fstatat64)(dirfd, path, st, flags), (struct stat *)st);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	int r = REAL(statx)(dirfd, path, flags, mask, stx), tfd;
	struct stat t;

	if (r == 0 && S_ISREG(stx->stx_mode) &&
	    (tfd = committed_file_target(makedev(stx->stx_dev_major, stx->stx_dev_minor),
					 stx->stx_ino)) >= 0) {
		shim_busy++;
		if (REAL(fstat)(tfd, &t) == 0) {
			stx->stx_size = (uint64_t)t.st_size;
			stx->stx_blocks = (uint64_t)t.st_blocks;
			stx->stx_mtime.tv_sec = t.st_mtim.tv_sec;
			stx->stx_mtime.tv_nsec = (uint32_t)t.st_mtim.tv_nsec;
			stx->stx_ctime.tv_sec = t.st_ctim.tv_sec;
			stx->stx_ctime.tv_nsec = (uint32_t)t.st_ctim.tv_nsec;
		}
		shim_busy--;
	}
	return r;
}

static off_t seek_target(int fd, off_t off, int whence, off_t (*real)(int, off_t, int))
{
	int tfd;
	off_t at;

	if (shim_busy || (whence != SEEK_END && whence != SEEK_DATA && whence != SEEK_HOLE) ||
	    (tfd = committed_target(fd)) < 0)
		return real(fd, off, whence);
	shim_busy++;
	if (whence == SEEK_END) {
		struct stat t;

		if (REAL(fstat)(tfd, &t) < 0) {
			at = -1;
		} else if (t.st_size + off < 0) {
			errno = EINVAL;
			at = -1;
		} else {
			at = t.st_size + off;
		}
	} else {
		at = real(tfd, off, whence);
	}
	if (at >= 0)
		at = real(fd, at, SEEK_SET);
	shim_busy--;
	return at;
}

off_t lseek(int fd, off_t off, int whence)
{
	return seek_target(fd, off, whence, REAL(lseek));
}

off_t lseek64(int fd, off_t off, int whence)
{
	return seek_target(fd, off, whence, REAL(lseek64));
}
