/*
 * tgt: zeroing, growing and cutting back targets (see tgt.h).
 */
#include "tgt.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"
#include "ctl.h"
#include "io.h"

int tgt_zero(int fd, bool file, uint64_t off, uint64_t len, void *buf, size_t bufsz)
{
	struct stat sb;
	int rc;

	if (len == 0)
		return 0;
	if (file) {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			return 0;
		/* no punching here: write zeros, but only below the end */
		if (fstat(fd, &sb) < 0)
			return -errno;
		if ((uint64_t)sb.st_size <= off)
			return 0;
		if (len > (uint64_t)sb.st_size - off)
			len = (uint64_t)sb.st_size - off;
	} else if ((off % 512) == 0 && (len % 512) == 0) {
		uint64_t range[2] = { off, len };
		if (ioctl(fd, BLKZEROOUT, range) == 0)
			return 0;
	}
	memset(buf, 0, bufsz);
	while (len > 0) {
		size_t n = len < bufsz ? (size_t)len : bufsz;

		rc = io_pwrite_full(fd, buf, n, off);
		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

int tgt_extend(int fd, uint64_t upto)
{
	struct stat sb;
	static const char zero;

	if (upto == 0)
		return 0;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if ((uint64_t)sb.st_size >= upto)
		return 0;
	return io_pwrite_full(fd, &zero, 1, upto - 1);
}

static int lengths(int src, int tgt, uint64_t *s, uint64_t *t)
{
	struct stat a, b;

	if (fstat(src, &a) < 0 || fstat(tgt, &b) < 0)
		return -errno;
	*s = (uint64_t)a.st_size;
	*t = (uint64_t)b.st_size;
	return 0;
}

int tgt_trim(int lock_fd, bool locked, int src, int tgt, bool (*may_cut)(void *), void *arg)
{
	uint64_t s, t;
	int rc = lengths(src, tgt, &s, &t);

	if (rc < 0 || t <= s)
		return rc;
	if (!locked && (rc = ctl_lock_length(lock_fd, F_WRLCK)) < 0)
		return rc;
	/* again, now that no copy is writing the target */
	rc = lengths(src, tgt, &s, &t);
	if (rc == 0 && t > s && (may_cut == NULL || may_cut(arg))) {
		CRASH_POINT("target.cut.before");
		rc = ftruncate(tgt, (off_t)s) < 0 ? -errno : 1;
		if (rc == 1)
			CRASH_POINT("target.cut.after");
	}
	if (!locked)
		(void)ctl_lock_length(lock_fd, F_UNLCK);
	return rc;
}
