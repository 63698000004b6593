/*
 * ingest: the copier reads the dirty-log segments in STATE/log.
 *
 * Each checkpoint first collects the records appended since the last one
 * (ingest_collect), the engine marks their regions dirty, and the
 * checkpoint transaction records the new ingest offsets together with the
 * dirty-set changes (ingest_record).  After the commit, segments whose
 * writer has exited and whose records are all ingested are removed
 * (ingest_done).  A record appended after the copier last cleaned a region
 * is therefore never lost: it is either in a segment past its durable
 * offset, or in the durable dirty set.
 *
 * Main thread only.
 */
#ifndef VOLMIG_INGEST_H
#define VOLMIG_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct ingest_rec {
	uint32_t pair;
	uint32_t count;
	uint64_t first;
};

struct ingest_seg {
	char name[64];
	uint64_t off;      /* durable ingest offset */
	uint64_t new_off;  /* offset after this batch */
	uint64_t lost;     /* pairs flagged lost in the header */
	uint64_t events;   /* losses counted in the header */
	uint64_t lost_seen; /* losses already handled (durable) */
	bool present;      /* seen in this scan */
	bool finished;     /* writer gone and every record ingested */
};

struct ingest {
	const char *dir;
	uint64_t session_id;
	uint32_t npairs;
	uint64_t nregions[64];
	struct ingest_seg *segs;
	size_t nsegs;
	struct ingest_rec *recs; /* this batch */
	size_t nrecs, cap;
	uint64_t lost_new;       /* pairs newly flagged lost in this batch */
};

/*
 * Read every segment's records past its offset into in->recs.  Returns 0;
 * -EBADMSG for a corrupted segment (reported with its name and offset);
 * another -errno.  Segments of another session are ignored.
 */
int ingest_collect(struct ingest *in, struct state *st);

/* Inside the checkpoint transaction: new offsets, lost flags handled,
 * finished segments forgotten. */
int ingest_record(struct ingest *in, struct state *st, DB_TXN *txn);

/* After the commit: offsets advance, finished segments are unlinked. */
void ingest_done(struct ingest *in);

/* After a failed commit: forget the batch (it is read again). */
void ingest_undo(struct ingest *in);

void ingest_release(struct ingest *in);

#endif
