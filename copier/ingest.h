/*
 * ingest: the copier reads the dirty-log segments in STATE/log.
 *
 * Each checkpoint first collects the records appended since the last one
 * (ingest_collect), the engine marks their regions dirty, and the
 * checkpoint transaction records the new ingest offsets together with the
 * dirty-set changes (ingest_record).  After the commit, segments whose
 * writer has exited and whose records are all ingested are removed
 * (ingest_done); from the segments of writers still running, the copier
 * punches out what was recorded (ingest_trim).  A record appended after the
 * copier last cleaned a region is therefore never lost: it is either in a
 * segment past its durable offset, or in the durable dirty set.
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
	uint64_t trimmed;  /* punched out from the header up to here (ingest_trim) */
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
	bool no_punch;           /* the file system cannot punch holes */
	bool quiet;              /* a reader that only looks: a corrupted
				    segment is not reported */
};

/* A live segment's recorded records are punched out once this much more of
 * them is recorded (ingest_trim). */
#define INGEST_TRIM_BYTES (1u << 20)

/* A reader of session s's dirty log in dir that only looks (verify,
 * status): quiet, or it reports a corrupted segment. */
void ingest_reader(struct ingest *in, const char *dir, const struct sess *s, bool quiet);

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

/*
 * Give back the space of records every checkpoint has recorded: in each
 * segment whose writer still runs (a finished one is removed whole), punch
 * out the bytes from the header to its durable offset (rounded down to a
 * 4 KiB block), once that passed the last punch by INGEST_TRIM_BYTES.  A
 * program that runs for the whole migration otherwise keeps every record it
 * ever appended: while mirrored, 32 bytes per write to a region the copier
 * has confirmed since the last one.
 * The file keeps its size and the header; the writer appends at its end.
 *
 * Only after the commit that recorded the offsets (ingest_done), and only
 * where no other reader can start below them: a reader starts at a
 * segment's durable offset, so that offset must never go back below a
 * punch.  The copier calls it with the length lock shared and no commit
 * under way (engine.c, trim_segments).  Returns the bytes punched; a file
 * system that cannot punch holes is not asked again.
 */
bool ingest_trim_due(const struct ingest *in);
uint64_t ingest_trim(struct ingest *in);

/* After a failed commit: forget the batch (it is read again). */
void ingest_undo(struct ingest *in);

void ingest_release(struct ingest *in);

#endif
