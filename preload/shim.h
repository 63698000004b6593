/*
 * The shim's internals: what its wrapper families share.
 *
 * libvolmig.so is loaded into unmodified applications with LD_PRELOAD.
 * Its wrappers classify each fd lazily (fstat: device and inode, or rdev,
 * against the session's pairs), and around every write to a source they run
 * the region protocol (lib/ctl.h) and, on a region's clean-to-dirty
 * transition, append its intent to the process's dirty-log segment and make
 * it durable before the write is issued (I2).
 *
 * Rules every wrapper follows: a per-thread guard sends the shim's own calls
 * straight to libc; the caller's errno is preserved unless the shim itself
 * fails the call; real functions are resolved in the constructor and lazily.
 * libc only.
 */
#ifndef VOLMIG_SHIM_H
#define VOLMIG_SHIM_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sess.h"

/* Per-thread re-entry guard: nonzero while the shim is working. */
extern __thread int shim_busy __attribute__((tls_model("initial-exec")));

/* Look up the next definition of a libc function (RTLD_NEXT), or abort
 * with a message when there is none. */
void *shim_real(const char *name);

#define REAL(fn)                                                                          \
	({                                                                                \
		static __typeof__(fn) *real_##fn;                                         \
		if (__builtin_expect(real_##fn == NULL, 0))                               \
			real_##fn = (__typeof__(fn) *)shim_real(#fn);                    \
		real_##fn;                                                                \
	})

/* A write being tracked (from shim_track_begin to shim_track_end). */
struct shim_track {
	bool active;
	uint32_t pair;
	uint64_t first, n;
	int entry;
	int hold;   /* >= 0: an untracked write before the block exists, holding
		       the attach lock shared (fd of STATE/ctl.lock) */
};

/* A length for shim_track_begin: from off to the end of what is tracked. */
#define SHIM_TO_END UINT64_MAX

/*
 * A write or length change reaches past the bytes the session tracks for
 * pair (the source's size at setup plus its reserve).  The application's
 * call goes on; the copier finds the source too large at its next
 * checkpoint and stops the migration, keeping the source in use.  Says so
 * on stderr, once per pair.
 */
void shim_past_capacity(int pair);

/*
 * Before a write of len bytes at off to fd: if fd is a source, count the
 * write in flight on its regions and make the intent of every clean region
 * durable (I2).  Returns 0 (t->active tells whether fd was a source) or
 * -errno when the intent could not be made durable: the caller must fail
 * its write with that errno (nothing is left in flight then).
 */
int shim_track_begin(int fd, uint64_t off, uint64_t len, struct shim_track *t);

/* The same for an fd already known to be the source of pair (the caller
 * classified it): the write path then classifies each fd once. */
int shim_track_pair(int pair, uint64_t off, uint64_t len, struct shim_track *t);

/* After the write completed (or failed). */
void shim_track_end(struct shim_track *t);

/* In a forked child: count the regions of t (a mapping the parent tracks)
 * for this process too.  0 or -errno. */
int shim_track_again(struct shim_track *t);

/* fd.c: the child's share of tracked shared mappings after fork. */
void shim_maps_after_fork(void);

/* Is fd a source?  Returns the pair index, or -1. */
int shim_source_pair(int fd);

/* The pair whose source is the file with this device and inode (as stat
 * gives them), or -1.  Attaches to the session's control block if this
 * process has not yet (a path stat may come before any open). */
int shim_file_pair(uint64_t dev, uint64_t ino);

/*
 * Must a write to fd go through shim_track_begin?  The pair index (a
 * source); -2 when fd may be a source the tracker cannot classify yet (no
 * control block: it holds the attach lock; or an unusable block: it fails
 * the write); -1 when not.  For wrappers that do work (find the offset)
 * before tracking.
 */
int shim_fd_tracked(int fd);

/* Path of pair's source for messages (into buf), or a generic phrase. */
const char *shim_source_path(int pair, char *buf, size_t len);

struct ctl;
/* The control block when attached, else NULL. */
const struct ctl *shim_ctl(void);
uint64_t shim_wait_us(void);

/*
 * The target of pair, opened (O_DIRECT, O_DSYNC, O_SYNC when srcfd is) on
 * first use and kept; an fd or -errno.  shim_target_fd_lost forgets an fd that stopped
 * working (EBADF: the program closed it) so the next call reopens.
 */
int shim_target_fd(int pair, int srcfd);
void shim_target_fd_lost(int pair, int fd);

/* The state word of the control block once this process is attached to
 * it (set once, before the attach is announced), NULL before. */
extern const _Atomic uint32_t *_Atomic shim_state_word __attribute__((visibility("hidden")));

/* Where an operation on a source goes in the session's current state. */
enum shim_route {
	SHIM_SOURCE = 0, /* copying (or no session, or aborted) */
	SHIM_MIRROR = 1, /* synced, switched: writes to both */
	SHIM_TARGET = 2, /* committed: the target only */
};

/* Read from the control block's state word at each call (inline: every
 * write reads it before it is tracked, and again after it, for mirroring).
 * The source before this process has attached (no state word yet). */
static inline enum shim_route shim_write_route(void)
{
	const _Atomic uint32_t *w = atomic_load_explicit(&shim_state_word, memory_order_acquire);
	uint32_t st;

	if (w == NULL)
		return SHIM_SOURCE;
	st = atomic_load_explicit(w, memory_order_acquire);
	if (st == SESS_SYNCED || st == SESS_SWITCHED)
		return SHIM_MIRROR;
	if (st == SESS_COMMITTED)
		return SHIM_TARGET;
	return SHIM_SOURCE;
}

/* Should a read of [off, off + len) of pair go to the target? */
bool shim_read_from_target(int pair, uint64_t off, uint64_t len);

/*
 * The read family's fast path: true when the state alone says a read of
 * any fd stays on that fd, so the fd need not be looked up.  That is when
 * attached (before, the lookup may attach) and the state sends no read to
 * a target: neither switched nor committed; with at_offset (a read at the
 * current offset, see rd.c), not synced either.  Inline: it is all a read
 * of a source costs the program until the switch.
 */
static inline bool shim_reads_stay(bool at_offset)
{
	const _Atomic uint32_t *w = atomic_load_explicit(&shim_state_word, memory_order_acquire);
	uint32_t st;

	if (w == NULL)
		return false;
	st = atomic_load_explicit(w, memory_order_acquire);
	return st != SESS_SWITCHED && st != SESS_COMMITTED && !(at_offset && st == SESS_SYNCED);
}

/* A commit holds new writes back: wait for it (bounded, I7). */
void shim_barrier_wait(void);

/*
 * After a write of n bytes (iov[0..cnt) from its start, or, with iov NULL,
 * whatever the source now holds in [off, off + n)) to the source of pair
 * succeeded in the mirrored states: the same to the target, with the
 * write's RWF_DSYNC/RWF_SYNC flags (rwf; other flags are ignored).  0, or
 * -errno when the application's write must fail because a commit is near
 * and the target did not get it.  Otherwise a failed target write leaves
 * the regions dirty and is counted (status shows it).
 */
int shim_mirror(int pair, int srcfd, const struct iovec *iov, int cnt, uint64_t off, uint64_t n,
		int rwf);

/*
 * After the source of pair (srcfd) was given length len in the mirrored
 * states, the regions from `from` on tracked: a file target gets the same
 * length (a block device keeps its own; the copier zeroes past the end).
 * 0, or -errno as shim_mirror.
 */
int shim_mirror_truncate(int pair, int srcfd, uint64_t from, uint64_t len);

/* "volmig shim[pid]: ..." on stderr; errno preserved. */
void shim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Was fd opened O_APPEND (as of its classification; F_SETFL forgets it)? */
bool shim_fd_append(int fd);

/* Forget what is known of fd (closed, or replaced by dup2). */
void shim_fd_forget(int fd);

/* Total length of an iovec array (saturating). */
uint64_t shim_iov_len(const struct iovec *iov, int cnt);

/* Environment for an exec'd program: envp with LD_PRELOAD naming the shim
 * and VOLMIG_STATE kept.  Returns a malloc'ed array (or envp itself when
 * nothing was missing); shim_env_free releases it. */
char **shim_env_for_exec(char *const envp[]);
void shim_env_free(char **env, char *const envp[]);

/* Called in the child after fork. */
void shim_after_fork_child(void);

/* aio: forget every tracked iocb (process start, fork child). */
void shim_aio_reset(void);

#endif
