/*
 * iocb: see iocb.h.
 */
#include "iocb.h"

#include <errno.h>
#include <stddef.h>
#include <sys/uio.h>

int iocb_classify(const struct iocb *cb, struct iocb_info *out)
{
	const struct iovec *iov;
	uint64_t n = 0;

	out->kind = IOCB_OTHER;
	out->fd = (int)cb->aio_fildes;
	out->off = 0;
	out->len = 0;
	switch (cb->aio_lio_opcode) {
	case IOCB_CMD_PREAD:
	case IOCB_CMD_PREADV:
		out->kind = IOCB_READ;
		break;
	case IOCB_CMD_PWRITE:
	case IOCB_CMD_PWRITEV:
		out->kind = IOCB_WRITE;
		break;
	default:
		return 0;
	}
	if (cb->aio_offset < 0)
		return -EINVAL;
	out->off = (uint64_t)cb->aio_offset;
	if (cb->aio_lio_opcode == IOCB_CMD_PREAD || cb->aio_lio_opcode == IOCB_CMD_PWRITE) {
		out->len = cb->aio_nbytes;
		return 0;
	}
	/* vectored: aio_buf is the iovec array, aio_nbytes its length */
	if (cb->aio_nbytes > IOCB_MAX_IOV || (cb->aio_nbytes > 0 && cb->aio_buf == 0))
		return -EINVAL;
	iov = (const struct iovec *)(uintptr_t)cb->aio_buf;
	for (uint64_t i = 0; i < cb->aio_nbytes; i++) {
		if (iov[i].iov_len > UINT64_MAX - n) {
			n = UINT64_MAX;
			break;
		}
		n += iov[i].iov_len;
	}
	out->len = n;
	return 0;
}
