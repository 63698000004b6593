/*
 * state: the durable store of a session, in a transactional Berkeley DB
 * environment inside the state directory.
 *
 * Contents (one database file, volmig.db, with three named databases):
 *   meta    "session"        -> the session record (lib/sess.h encoding)
 *           "pair/<i>"       -> struct state_progress of pair i
 *           "totals"         -> struct state_totals
 *           "mirror/<i>"     -> u64 failed target writes of pair i
 *   dirty   (u32 pair, u64 region), big-endian -> empty: the durable dirty set
 *   ingest  segment name     -> u64 ingest offset of that dirty-log segment
 *
 * The environment is opened with DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
 * DB_INIT_MPOOL and DB_REGISTER | DB_RECOVER: recovery runs whenever a
 * process that had the environment open died without closing it (and on
 * first use), and a second volmig process (status while sync runs) joins a
 * live environment instead of recovering it underneath the first.  Every
 * commit is synchronous: a committed transaction survives power loss.
 *
 * Only the copier (the `volmig` command) links this module; applications
 * never open the environment (DESIGN.md: non-robust mutexes).
 * A struct state is used by one thread at a time.
 */
#ifndef VOLMIG_STATE_H
#define VOLMIG_STATE_H

#include <db.h>
#include <stdint.h>

#include "region.h"
#include "sess.h"

struct state {
	DB_ENV *env;
	DB *meta;
	DB *dirty;
	DB *ingest;
};

/*
 * The size of each log file.  Berkeley DB sizes a log file to this at its
 * first write, and the recovery after a kill writes zeros from the last
 * record to the file's end, which the next commit then flushes: a restart
 * after a kill pays for up to this many bytes written and flushed before
 * copying (about 6 ms for 4 MiB here).  A checkpoint logs about 2 KiB, so
 * files still turn over rarely.
 */
#define STATE_LOG_FILE_BYTES (1u << 20)

/*
 * Log written since the last Berkeley DB checkpoint before the copier takes
 * the next one (state_log_checkpoint).  Recovery after a kill replays the
 * log from the last checkpoint on (about 22 ms per MiB here), and only a
 * checkpoint lets log files go: without one a copier in the mirrored phase
 * kept every record of its run.  An idle checkpoint of one pair logs about
 * 110 bytes, so at one a second this is a Berkeley DB checkpoint every 20
 * minutes or so.
 */
#define STATE_LOG_TRIM_KBYTES 128u

enum state_open_flags {
	STATE_CREATE = 1 << 0, /* create the environment and databases */
};

/* Durable progress of one pair. */
struct state_progress {
	uint64_t cursor;         /* regions below it were copied and flushed (I3) */
	uint64_t bytes_copied;   /* bytes written to the target, checkpointed */
	uint64_t bytes_recopied; /* of those, bytes copied again after a resume */
	uint64_t hwm;            /* highest region end whose copying had begun,
				    as far as it was known at the last resume */
};

struct state_totals {
	uint64_t resumes; /* times `sync` started with work already done */
};

/* Operator controls and transitions in progress (meta key "control"). */
struct state_control {
	uint32_t paused;        /* volmig pause: the copier copies nothing */
	uint32_t pending;       /* a transition begun, not recorded: its target
				   state (SESS_COMMITTED), 0 when none */
	int32_t pending_pid;    /* the command running it, and its start time */
	uint32_t recovered;     /* what the last command did with a cut-off
				   transition: enum state_recovery */
	uint64_t pending_start;
	uint64_t rate;          /* volmig throttle, bytes/s; 0: as sync was told */
	uint32_t recovered_state; /* the state the transition was to */
	uint32_t stopped;       /* 1 + the pair whose source grew past its
				   capacity (the migration is stopped), 0 */
	uint64_t recovered_at;  /* when (seconds since the epoch) */
	uint64_t stopped_size;  /* the size that source was found at */
};

enum state_recovery {
	STATE_RECOVERY_NONE = 0,
	STATE_RECOVERY_ROLLED_BACK = 1,
	STATE_RECOVERY_FINISHED = 2,
};

/*
 * Open (and with STATE_CREATE create) the store in dir, running recovery if
 * needed.  Returns 0; -ENOENT when there is no store and STATE_CREATE was not
 * given; -EBADMSG when the files are not a volmig store or are corrupted;
 * another -errno.  On failure *st is left closed.
 */
int state_open(struct state *st, const char *dir, unsigned flags);

/*
 * Remove every file of a store from dir (database, environment regions,
 * log files).  The store must not be open anywhere.  0 or -errno.
 */
int state_remove(const char *dir);

/* Close the store (idempotent).  0 or -errno of the first failing close. */
int state_close(struct state *st);

/*
 * Run fn inside one transaction: begin, fn(st, txn, arg), commit.  A
 * deadlock aborts and runs fn again (fn must be restartable); any other
 * failure of fn aborts and is returned.  0 once committed, or -errno.
 */
int state_txn(struct state *st, int (*fn)(struct state *, DB_TXN *, void *), void *arg);

/* Session record.  get: 0, -ENOENT, or sess_decode's errors. */
int state_sess_get(struct state *st, DB_TXN *txn, struct sess *s);
int state_sess_put(struct state *st, DB_TXN *txn, const struct sess *s);

/* Progress of pair i; a pair never written reads as all zero. */
int state_progress_get(struct state *st, DB_TXN *txn, uint32_t pair, struct state_progress *p);
int state_progress_put(struct state *st, DB_TXN *txn, uint32_t pair, const struct state_progress *p);

int state_totals_get(struct state *st, DB_TXN *txn, struct state_totals *t);
int state_totals_put(struct state *st, DB_TXN *txn, const struct state_totals *t);

/*
 * Failed target writes of pair i that the shim counted in the control
 * block (status: mirror_errors), as the copier last recorded them; 0 when
 * never recorded.  The control block is rebuilt from this.
 */
int state_mirror_errors_get(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t *n);
int state_mirror_errors_put(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t n);

/* The control record; all zero when there is none. */
int state_control_get(struct state *st, DB_TXN *txn, struct state_control *c);
int state_control_put(struct state *st, DB_TXN *txn, const struct state_control *c);

/* Durable dirty set.  add/del are idempotent. */
int state_dirty_add(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t region);
int state_dirty_del(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t region);
/* Set in m (sized for the pair) the bit of every dirty region of pair;
 * regions beyond m->nbits are counted in *beyond (may be NULL). */
int state_dirty_load(struct state *st, DB_TXN *txn, uint32_t pair, struct region_map *m,
		     uint64_t *beyond);
/* Number of dirty regions of pair. */
int state_dirty_count(struct state *st, DB_TXN *txn, uint32_t pair, uint64_t *n);
/* Remove every region of pair from the dirty set. */
int state_dirty_clear(struct state *st, DB_TXN *txn, uint32_t pair);

/* Dirty-log ingest offsets, by segment file name; with each, the pairs
 * whose loss of tracking (flagged in that segment) was already handled.
 * get: 0 or -ENOENT.  get_txn runs its own transaction. */
int state_ingest_get(struct state *st, DB_TXN *txn, const char *segment, uint64_t *off);
int state_ingest_get2(struct state *st, DB_TXN *txn, const char *segment, uint64_t *off,
		      uint64_t *lost);
int state_ingest_get_txn(struct state *st, const char *segment, uint64_t *off, uint64_t *lost);
int state_ingest_put(struct state *st, DB_TXN *txn, const char *segment, uint64_t off);
int state_ingest_put2(struct state *st, DB_TXN *txn, const char *segment, uint64_t off,
		      uint64_t lost);
int state_ingest_del(struct state *st, DB_TXN *txn, const char *segment);

/* Berkeley DB's return code as -errno (DB_NOTFOUND -> -ENOENT, deadlock ->
 * -EDEADLK, run-recovery -> -EIO, other DB codes -> -EIO). */
int state_errno(int dbrc);

/* Checkpoint the environment (its pages written and flushed, a checkpoint
 * record logged) once kbytes of log were written since the last one (0:
 * now); log files no longer needed for recovery are then removed. */
int state_log_checkpoint(struct state *st, unsigned kbytes);

#endif
