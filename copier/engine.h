/*
 * engine: the copier.  Copies every pair's regions from source to target
 * with several I/Os in flight, through the region protocol of the control
 * block (I4), and checkpoints its progress in Berkeley DB (I3, I6).
 *
 * Threads: the calling thread runs the checkpoint/progress loop; `threads`
 * workers copy regions.  Shared engine state is guarded by one mutex that is
 * never held across I/O.
 */
#ifndef VOLMIG_ENGINE_H
#define VOLMIG_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "sess.h"
#include "state.h"

struct engine_opts {
	unsigned threads;        /* workers (I/Os in flight) */
	uint64_t rate;           /* bytes per second, 0 for no limit */
	bool direct;             /* O_DIRECT on source and target */
	uint64_t checkpoint_us;  /* checkpoint interval */
	bool follow;             /* keep draining after synced */
	double progress_every;   /* seconds between progress lines off a tty */
	int lock_fd;             /* STATE/lock, held by the caller (-1: none) */
};

/*
 * Copy until the session is synced (and with follow, until it is committed
 * or aborted).  dir is the state directory, st its open store, s the session
 * record as read (its state is updated as the engine moves it).  Each
 * checkpoint first checks that dir/lock still names o->lock_fd's file: a
 * state directory removed, or set up again, under the copier stops it
 * (-ESTALE).
 *
 * Returns 0 when synced (or, with follow, finished); -EINTR when stopped by
 * SIGINT/SIGTERM after a final checkpoint; -ECANCELED when the session was
 * aborted meanwhile; another -errno on failure.  Every failure is reported
 * before returning.
 */
int engine_run(const char *dir, struct state *st, struct sess *s, const struct engine_opts *o);

#endif
