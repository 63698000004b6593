/*
 * iocb: what a Linux AIO control block asks for, as the shim needs to know
 * before the kernel sees it: a read, a write or something else, on which
 * fd, at which offset, for how many bytes.  libc only (the shim links it).
 */
#ifndef VOLMIG_IOCB_H
#define VOLMIG_IOCB_H

#include <linux/aio_abi.h>
#include <stdint.h>

#define IOCB_MAX_IOV 1024 /* UIO_MAXIOV: the kernel refuses more */

enum iocb_kind {
	IOCB_OTHER = 0, /* fsync, poll, noop...: not data */
	IOCB_READ = 1,  /* IOCB_CMD_PREAD, IOCB_CMD_PREADV */
	IOCB_WRITE = 2, /* IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV */
};

struct iocb_info {
	enum iocb_kind kind;
	int fd;
	uint64_t off;
	uint64_t len; /* bytes, saturating at UINT64_MAX */
};

/*
 * Classify cb.  Returns 0; -EINVAL for a read or write the kernel will
 * refuse without doing anything (a negative offset, a vectored one with
 * more than IOCB_MAX_IOV segments or no segment array): the caller then
 * lets the kernel say so and tracks nothing.  For the vectored commands it
 * reads the application's iovec array (aio_buf, aio_nbytes entries).
 */
int iocb_classify(const struct iocb *cb, struct iocb_info *out);

#endif
