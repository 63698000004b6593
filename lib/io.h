/*
 * io: full-length I/O helpers and the system-call table.
 *
 * Short transfers and EINTR are normal on every path volmig touches (pipes,
 * signals, block devices at their end); these helpers handle them once.
 * Every call goes through io_sys, a table of function pointers that tests
 * swap to inject EIO, ENOSPC, EINTR and short transfers (see
 * harness/unit/u-io.c).  All functions return 0 or a byte count on success
 * and -errno on failure; errno itself is left as the last call set it.
 * Safe from any thread; io_sys is read-only after start-up.
 */
#ifndef VOLMIG_IO_H
#define VOLMIG_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io_sys {
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fdatasync)(int fd);
};

/* The table in use; tests may replace members before starting threads. */
extern struct io_sys io_sys;

/*
 * Read up to len bytes at off, retrying after EINTR and short reads.
 * Returns the byte count (less than len only at end of file) or -errno.
 */
ssize_t io_pread_full(int fd, void *buf, size_t len, uint64_t off);

/*
 * Write exactly len bytes at off, retrying after EINTR and short writes.
 * Returns 0, or -errno; a write that makes no progress gives -EIO.
 */
int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* fdatasync, retried after EINTR.  0 or -errno. */
int io_fdatasync(int fd);

/*
 * Size in bytes of an open file or block device (BLKGETSIZE64 for the
 * latter).  0 and *out set, or -errno.
 */
int io_size(int fd, uint64_t *out);

/* Write all of a NUL-terminated string to fd (stdout/stderr use). */
int io_write_str(int fd, const char *s);

#endif
