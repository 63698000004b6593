/*
 * dlog: the dirty log -- per-process segment files of checksummed intent
 * records, written by the shim and ingested by the copier.
 *
 * A segment (STATE/log/<pid>-<start>.seg) is a 4 KiB header followed by
 * 32-byte records:
 *
 *   u64 seq     index of the record in the segment, from 1 (so a record
 *               copied or shifted elsewhere does not validate)
 *   u32 pair    pair index
 *   u32 count   regions, >= 1
 *   u64 first   first region
 *   u64 csum    XXH3-64 of the 24 bytes above, seeded with the segment salt
 *
 * Records are appended in order under a per-process mutex and made durable
 * by fdatasync (one per record in "sync" durability, or a group commit of
 * all threads of the process), so the durable records of a segment always
 * form a prefix (I2: the intent is durable before the data write is
 * issued).  The space is preallocated in DLOG_PREALLOC steps, so the tail of
 * a segment reads as zeros: the decoder stops at the first all-zero slot.
 * A bad record that nothing non-zero follows is a torn tail (ignored); a
 * bad record followed by more data is corruption.
 *
 * Full disk: when a record cannot be written for lack of space, the pair is
 * flagged in the (preallocated) header instead; if that flag is durable the
 * application write may go on, and the copier re-copies the whole pair.
 *
 * libc only (the shim links it); xxhash is compiled in from its header.
 */
#ifndef VOLMIG_DLOG_H
#define VOLMIG_DLOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DLOG_MAGIC UINT64_C(0x31474f4c44474d56) /* "VMGDLOG1" */
#define DLOG_VERSION 1
#define DLOG_HDR_SIZE 4096u
#define DLOG_REC_SIZE 32u
#define DLOG_PREALLOC (1u << 20)

struct dlog_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint64_t session_id;
	uint64_t salt;       /* seeds the record checksums */
	int32_t pid;
	uint32_t lost_events; /* losses of tracking made durable so far (each
			      one means: re-copy the pairs in lost_pairs) */
	uint64_t start;      /* writer's process start time (pid reuse) */
	uint64_t lost_pairs; /* bit p: tracking of pair p was lost (full re-copy) */
	uint64_t checksum;   /* XXH3-64 of the bytes above */
};

struct dlog_rec {
	uint64_t seq;
	uint32_t pair;
	uint32_t count;
	uint64_t first;
};

/* Encode one record for slot seq into out[DLOG_REC_SIZE]. */
void dlog_rec_encode(const struct dlog_rec *r, uint64_t salt, uint8_t out[DLOG_REC_SIZE]);

/* Encode a header (computing its checksum) into out[DLOG_HDR_SIZE], zero-padded. */
void dlog_hdr_encode(const struct dlog_hdr *h, uint8_t out[DLOG_HDR_SIZE]);

/*
 * Decode a header.  0; -EBADMSG when buf is short, the magic, version, size
 * or checksum is wrong.
 */
int dlog_hdr_decode(const uint8_t *buf, size_t len, struct dlog_hdr *h);

enum dlog_end {
	DLOG_END_CLEAN = 0, /* stopped at the end of the bytes or at a zero slot */
	DLOG_END_TORN = 1,  /* a bad last record (nothing non-zero after it) */
	DLOG_END_CORRUPT = 2, /* a bad record with data after it */
};

struct dlog_scan {
	size_t valid;        /* bytes of the longest valid prefix of records */
	uint64_t next_seq;   /* seq the record after the prefix must carry */
	enum dlog_end end;
	size_t bad_off;      /* with TORN or CORRUPT: offset of the bad record */
};

/*
 * Decode records from buf[0..len), which starts at a record boundary whose
 * first record must carry seq first_seq.  Calls fn (if not NULL) for each
 * valid record in order.  Fills *res; returns the number of records, never
 * fails: it accepts exactly the longest valid prefix.  Pure; safe on
 * hostile bytes.
 */
size_t dlog_scan(const uint8_t *buf, size_t len, uint64_t salt, uint64_t first_seq,
		 void (*fn)(const struct dlog_rec *r, void *arg), void *arg, struct dlog_scan *res);

/* An fdatasync of a segment in flight (on its caller's stack). */
struct dlog_flight {
	uint64_t ticket;
	struct dlog_flight *prev, *next;
};

/* A segment open for appending (the shim's side). */
struct dlog_writer {
	int fd;
	uint64_t salt;
	bool sync_each;          /* durability sync: fdatasync per record */
	pthread_mutex_t mu;      /* orders appends (slot, pwrite) */
	pthread_mutex_t sync_mu; /* guards syncing; sync_cv's mutex */
	pthread_cond_t sync_cv;  /* broadcast when a group-commit sync ends */
	bool syncing;            /* a group-commit leader is in fdatasync */
	_Atomic bool broken;     /* an fdatasync failed: nothing new is durable */
	pthread_mutex_t fl_mu;   /* guards the fdatasyncs in flight; fl_cv's mutex */
	pthread_cond_t fl_cv;    /* broadcast when an fdatasync ends */
	uint64_t fl_next;        /* ticket of the last fdatasync begun */
	struct dlog_flight *fl_head, *fl_tail; /* in flight, oldest first */
	uint64_t tail;           /* next free offset (under mu) */
	uint64_t prealloc_end;   /* preallocated up to here (under mu) */
	_Atomic uint64_t written;  /* records below were handed to the kernel */
	_Atomic uint64_t durable;  /* records below are durable */
	struct dlog_hdr hdr;     /* as last written (under mu) */
};

/*
 * Create the segment file `path` (O_EXCL) for session_id and open it for
 * appending.  The header is durable (and the directory entry fsynced via
 * dirfd >= 0) before this returns.  0 or -errno.
 */
int dlog_writer_create(struct dlog_writer *w, int dirfd, const char *path, uint64_t session_id,
		       pid_t pid, uint64_t start, bool sync_each);

/* Close the segment (nothing is flushed: appends already were). */
void dlog_writer_close(struct dlog_writer *w);

/*
 * Append the intent for regions [first, first + count) of pair and return
 * once it is durable (I2).  Returns 0; 1 when the record could not be
 * written for lack of space but the loss of tracking of the pair is durable
 * in the header (the caller may go on; the copier re-copies the pair);
 * -errno when neither is durable (the caller must fail its write).
 * Once an fdatasync of the segment has failed, no record that was not
 * durable before it is trusted again (the kernel may have dropped the pages
 * and reports the error to one caller only): those appends and every later
 * one return -EIO.
 * Thread-safe.  The shim calls it only for clean-to-dirty transitions.
 */
int dlog_append(struct dlog_writer *w, uint32_t pair, uint64_t first, uint32_t count);

/* Segment file name for a process: "<pid>-<start>.seg". */
int dlog_seg_name(pid_t pid, uint64_t start, char *buf, size_t len);

#endif
