/*
 * iocb: fuzz target for iocb_classify (lib/iocb.h), the shim's reading of an
 * io_submit control block.
 *
 * Input: the first 64 bytes are a struct iocb as the application filled it;
 * the rest is the memory its vectored commands point at (an iovec array):
 * for PREADV/PWRITEV the driver points aio_buf there and, unless the count
 * is over IOCB_MAX_IOV (refused without reading), clamps aio_nbytes to the
 * iovecs the input holds -- so any read past them is the classifier's bug,
 * seen by ASan or valgrind.  A byte pattern 0 in aio_buf's low byte keeps a
 * NULL array, to reach that refusal too.
 *
 * Contract, against a reference written from the kernel's rules: the kind
 * follows the opcode (other opcodes: IOCB_OTHER, never refused); a read or
 * write with a negative offset, a vectored one with more than IOCB_MAX_IOV
 * segments or a NULL array with segments, is refused (-EINVAL); otherwise
 * fd and offset are the iocb's and the length is aio_nbytes (plain) or the
 * saturating sum of the iov_len (vectored).
 */
#define FUZZ_NAME "iocb"
#include "fuzz.h"

#include <sys/uio.h>

#include "iocb.h"

static int fuzz_one(const uint8_t *data, size_t len)
{
	struct iocb cb;
	struct iocb_info info;
	struct iovec *iov = NULL;
	size_t niov;
	uint64_t want_len = 0;
	enum iocb_kind want_kind;
	bool vectored, refuse = false;
	int rc;

	if (len < sizeof(cb))
		return 0;
	memcpy(&cb, data, sizeof(cb));
	niov = (len - sizeof(cb)) / sizeof(struct iovec);
	if (niov > 0) {
		iov = malloc(niov * sizeof(*iov));
		FUZZ_CHECK(iov != NULL, "out of memory");
		memcpy(iov, data + sizeof(cb), niov * sizeof(*iov));
	}
	switch (cb.aio_lio_opcode) {
	case IOCB_CMD_PREAD:
	case IOCB_CMD_PREADV:
		want_kind = IOCB_READ;
		break;
	case IOCB_CMD_PWRITE:
	case IOCB_CMD_PWRITEV:
		want_kind = IOCB_WRITE;
		break;
	default:
		want_kind = IOCB_OTHER;
		break;
	}
	vectored = cb.aio_lio_opcode == IOCB_CMD_PREADV || cb.aio_lio_opcode == IOCB_CMD_PWRITEV;
	if (vectored) {
		if ((cb.aio_buf & 0xff) == 0)
			cb.aio_buf = 0;
		else
			cb.aio_buf = (uint64_t)(uintptr_t)iov;
		if (cb.aio_nbytes <= IOCB_MAX_IOV && cb.aio_nbytes > niov)
			cb.aio_nbytes = niov;
		if (cb.aio_buf == 0 && niov == 0 && cb.aio_nbytes > 0 && cb.aio_nbytes <= IOCB_MAX_IOV)
			cb.aio_nbytes = 0; /* nothing to point at: an empty array */
	}
	if (want_kind != IOCB_OTHER) {
		if (cb.aio_offset < 0)
			refuse = true;
		else if (vectored && (cb.aio_nbytes > IOCB_MAX_IOV ||
				      (cb.aio_nbytes > 0 && cb.aio_buf == 0)))
			refuse = true;
		else if (!vectored)
			want_len = cb.aio_nbytes;
		else
			for (uint64_t i = 0; i < cb.aio_nbytes; i++)
				want_len = iov[i].iov_len > UINT64_MAX - want_len
						   ? UINT64_MAX
						   : want_len + iov[i].iov_len;
	}
	memset(&info, 0xa5, sizeof(info));
	rc = iocb_classify(&cb, &info);
	if (refuse) {
		FUZZ_CHECK(rc == -EINVAL, "opcode %u offset %lld nbytes %llu: want -EINVAL, got %d",
			   cb.aio_lio_opcode, (long long)cb.aio_offset,
			   (unsigned long long)cb.aio_nbytes, rc);
	} else {
		FUZZ_CHECK(rc == 0, "opcode %u: refused (%d)", cb.aio_lio_opcode, rc);
		FUZZ_CHECK(info.kind == want_kind, "opcode %u: kind %d, want %d", cb.aio_lio_opcode,
			   info.kind, want_kind);
		FUZZ_CHECK(info.fd == (int)cb.aio_fildes, "fd %d, want %d", info.fd,
			   (int)cb.aio_fildes);
		if (want_kind != IOCB_OTHER) {
			FUZZ_CHECK(info.off == (uint64_t)cb.aio_offset, "offset %llu, want %lld",
				   (unsigned long long)info.off, (long long)cb.aio_offset);
			FUZZ_CHECK(info.len == want_len, "length %llu, want %llu",
				   (unsigned long long)info.len, (unsigned long long)want_len);
		}
	}
	free(iov);
	return rc == 0;
}
