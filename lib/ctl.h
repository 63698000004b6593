/*
 * ctl: the control block, a shared-memory file per session that the copier
 * and every process under the shim map.
 *
 * It is advisory (DESIGN.md "The control block"): rebuilt from durable state
 * whenever no live process is attached, never trusted across a crash of every
 * process, and a segment that fails validation (wrong magic, version, sizes
 * or checksum of its immutable part) is rejected, not used.
 *
 * Layout: a header (immutable part, then its checksum, then mutable atomics:
 * state, epoch, copier pid, table of attached processes), a string table with
 * the pairs' paths, then one 32-bit word per region of every pair:
 *
 *   bit 31 CTL_DIRTY    region may differ between source and target
 *   bit 30 CTL_CIP      the copier is copying the region
 *   bit 29 CTL_RACED    a write went ahead while CIP was set (I7 timeout)
 *   bit 28 CTL_QUIET    set by a --follow copier while mirrored, cleared by
 *                       every write's begin: no write began since it looked
 *   bits 0..15          writes in flight to the region
 *
 * The region protocol (I4) is the pair ctl_copy_begin/ctl_copy_end on the
 * copier's side and ctl_write_begin/ctl_write_end on the shim's; every change
 * of a region word is one compare-and-swap or fetch-op, so the two sides
 * always see a consistent word.  Touched by: the copier's worker threads and
 * every thread of every process under the shim, concurrently.  libc only.
 */
#ifndef VOLMIG_CTL_H
#define VOLMIG_CTL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MAGIC UINT64_C(0x314b4c43474d5600) /* "\0VMGCLK1" */
#define CTL_VERSION 3
#define CTL_MAX_PAIRS 64
#define CTL_MAX_PROCS 256
#define CTL_PROC_WRITES 128 /* journal entries per process */

enum ctl_region_bits {
	CTL_DIRTY = 1u << 31,
	CTL_CIP = 1u << 30,
	CTL_RACED = 1u << 29,
	CTL_QUIET = 1u << 28,
	CTL_INFLIGHT = 0xffffu,
};

struct ctl_ident {
	uint32_t kind; /* 1 file, 2 block device (as enum sess_kind) */
	uint32_t pad;
	uint64_t dev, ino, rdev;
};

struct ctl_pair {
	uint64_t size;         /* bytes tracked: the source's capacity (size at
				  setup + reserve); a write past it is not */
	uint64_t nregions;
	uint64_t first_region; /* index of the pair's region 0 in the word array */
	struct ctl_ident source_id;
	struct ctl_ident target_id;
	uint32_t source_off, source_len; /* paths in the string table */
	uint32_t target_off, target_len;
};

/*
 * One write in flight, journaled so that the copier can take back the
 * in-flight counts of a process that died mid-write.  `done` counts the
 * regions whose count this write holds; it is stored after each increment
 * and before each decrement, so after a crash it never claims more than the
 * write holds (a count it misses stays stale: the region stays dirty, which
 * is safe).
 */
struct ctl_write {
	_Atomic uint64_t first;
	_Atomic uint32_t pair;
	_Atomic uint32_t done;
};

struct ctl_proc {
	_Atomic int32_t pid;      /* 0: free slot; -1: being repaired */
	_Atomic uint32_t epoch;   /* last epoch the process acknowledged */
	_Atomic uint64_t start;   /* process start time, to tell pid reuse */
	_Atomic uint64_t used[CTL_PROC_WRITES / 64]; /* journal entries in use */
	struct ctl_write writes[CTL_PROC_WRITES];
};

struct ctl_hdr {
	/* immutable once published; covered by checksum */
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;      /* bytes of this struct */
	uint64_t map_size;      /* bytes of the whole file */
	uint64_t session_id;
	uint32_t region_shift;
	uint32_t npairs;
	uint64_t nregions;      /* words in the region array */
	uint64_t strtab_off, strtab_len;
	uint64_t regions_off;   /* page-aligned */
	uint32_t flags;         /* the session's flags (enum sess_flags) */
	uint32_t pad;
	struct ctl_pair pairs[CTL_MAX_PAIRS];
	uint64_t checksum;      /* FNV-1a 64 of every byte above */
	/* mutable */
	_Atomic uint32_t ready; /* 1 once the copier has filled the block */
	_Atomic uint32_t state; /* enum sess_state */
	_Atomic uint32_t epoch; /* bumped on every state change */
	_Atomic int32_t copier_pid;
	_Atomic int32_t barrier_pid; /* a commit holds new writes back (I5) */
	_Atomic uint32_t paused;     /* volmig pause */
	_Atomic uint64_t rate;       /* volmig throttle, bytes/s, 0: none given */
	_Atomic uint64_t mirror_errors[CTL_MAX_PAIRS]; /* failed target writes */
	/* 1 in a block `volmig setup` built: no copier has run, so every
	 * region is durably dirty and a shim alone keeps the DIRTY bits
	 * (ctl_reset).  A copier clears it, durably, before it copies. */
	_Atomic uint32_t pristine;
	uint32_t pad2;
	struct ctl_proc procs[CTL_MAX_PROCS];
};

struct ctl {
	struct ctl_hdr *hdr;
	_Atomic uint32_t *regions;
	size_t map_size;
};

/* What the copier fills a new block with. */
struct ctl_params {
	uint64_t session_id;
	uint32_t region_shift;
	uint32_t npairs;
	uint32_t flags;
	uint64_t sizes[CTL_MAX_PAIRS];
	struct ctl_ident source_ids[CTL_MAX_PAIRS];
	struct ctl_ident target_ids[CTL_MAX_PAIRS];
	const char *sources[CTL_MAX_PAIRS];
	const char *targets[CTL_MAX_PAIRS];
	bool pristine; /* built by setup (ctl_hdr.pristine) */
	/* the last dirty_tail[p] regions of pair p start DIRTY (0: none).
	 * Written with write(2) before the block is in place: storing them
	 * through the new mapping took a write fault per page (10 ms for the
	 * 4 MiB of 1 TiB in 1 MiB regions) at every copier start. */
	uint64_t dirty_tail[CTL_MAX_PAIRS];
};

/*
 * Path of the control block of the state directory dir: STATE/ctl.
 * 0 or -ENAMETOOLONG.
 */
int ctl_path(const char *dir, char *buf, size_t len);

/*
 * The attach lock, STATE/ctl.lock.  Every process that uses the control
 * block holds a shared open-file-description lock on it for as long as it
 * lives (a killed process lets go at once), so a process that gets the
 * exclusive lock knows that nobody is attached and may rebuild or reset the
 * block.  ctl_lock_open returns an fd (O_CLOEXEC) or -errno;
 * ctl_lock_exclusive tries without waiting (0, or -EAGAIN when others hold
 * it); ctl_lock_shared waits (0 or -errno) and also downgrades.
 *
 * Before the block exists, a shim process holds byte 1 of the same file
 * shared (ctl_lock_untracked) for the length of each write it cannot track
 * yet, and looks for the block only once it holds it.  The command that
 * builds the block publishes it first and then waits until it can take byte
 * 1 exclusive (ctl_lock_untracked_drain): from then on no write made
 * without the block is in flight, and every later one is tracked.  Writers
 * never wait for the builder, so a program that reaps its own asynchronous
 * writes cannot deadlock with it.
 */
int ctl_lock_open(const char *dir);
int ctl_lock_exclusive(int fd);
int ctl_lock_shared(int fd);
int ctl_lock_untracked(int fd);
/* 0 once drained (the byte is released again), -ETIMEDOUT after wait_ms. */
int ctl_lock_untracked_drain(int fd, unsigned wait_ms);

/*
 * The target lock, byte 2 of the same file (type F_RDLCK, F_WRLCK or
 * F_UNLCK; waits, polling).  The copier holds it shared, on an open of the file of
 * each thread's own, around every region copy; it is held exclusive to cut
 * a file target back to its source's length and by a commit from its
 * barrier until the committed state is announced.  So no target is cut
 * under a copy, and no copy from the source is still writing a target once
 * the target is the volume in use.  0 or -errno.
 */
int ctl_lock_length(int fd, int type);
/* The same, one try: 0, -EAGAIN when it is held in a conflicting way. */
int ctl_lock_length_try(int fd, int type);

/*
 * Make every region word trustworthy again when nobody else is attached
 * (the caller holds the exclusive lock): in-flight counts, CIP and RACED of
 * dead processes are dropped, the process table is emptied, and DIRTY is
 * cleared -- a DIRTY bit left by a dead session of processes is not backed
 * by anything durable, and a clear bit only makes writers log their intent.
 * In a pristine block every region is set DIRTY instead: no copier has run,
 * so durable state has every region dirty, and writers need log nothing.
 */
void ctl_reset(struct ctl *c);

/*
 * Clear the pristine mark, if set, and make that durable (msync of the
 * header) before returning: the copier calls it before it copies, so a block
 * found after a power loss is pristine only if no region was ever copied.
 * 0 or -errno.
 */
int ctl_unpristine(struct ctl *c);

/*
 * Make a new block at path (replacing any there, atomically by rename) with
 * every region word zero and ready = 0, and map it into *c.  The caller
 * fills dirty bits, then calls ctl_publish().  0 or -errno.
 */
int ctl_create(struct ctl *c, const char *path, const struct ctl_params *p);

/* Mark a created block ready: processes may use it from now on. */
void ctl_publish(struct ctl *c, uint32_t state);

/*
 * Map an existing block and validate it.  0; -ENOENT; -EBADMSG when it fails
 * validation (foreign, corrupted, or another version); -EAGAIN when it is
 * valid but not yet ready; other -errno.
 */
int ctl_attach(struct ctl *c, const char *path);

/* Unmap.  Idempotent. */
void ctl_detach(struct ctl *c);

/*
 * Check that buf[0..len) is a well-formed block: magic, version, header size,
 * map size == len, pair table and string table within bounds, regions
 * counted right, checksum.  0 or -EBADMSG.  Pure; safe on hostile bytes.
 */
int ctl_validate(const void *buf, size_t len);

/* Word of region r of pair p (no bounds check: callers check r < nregions). */
static inline _Atomic uint32_t *ctl_region(const struct ctl *c, uint32_t pair, uint64_t r)
{
	return &c->regions[c->hdr->pairs[pair].first_region + r];
}

/*
 * Copier: start copying region r of pair p (I4).  Sets CIP, waits up to
 * wait_us for writes in flight to drain, then clears DIRTY.  Returns 0 when
 * the region is now the copier's to copy, or -EBUSY when writes did not
 * drain in time (CIP is withdrawn; the region stays dirty and must be
 * retried).
 */
int ctl_copy_begin(struct ctl *c, uint32_t pair, uint64_t r, uint64_t wait_us);

/*
 * Copier: the copy of region r is done (its data written to the target).
 * Clears CIP and RACED.  Returns 1 when the region is clean as of the copy
 * (no write raced it and none re-dirtied it), 0 when it must stay dirty.
 */
int ctl_copy_end(struct ctl *c, uint32_t pair, uint64_t r);

/*
 * Shim: while a commit's barrier is up (barrier_pid names a live process;
 * 0, a dead one or one below 0 is no barrier), wait for it to come down, at
 * most wait_us by the clock (I7), then return either way.
 */
void ctl_barrier_wait(const struct ctl *c, uint64_t wait_us);

/*
 * Commit: as ctl_copy_end, but the region stays marked dirty either way, in
 * the same step that clears CIP.  For a region that is dirty in durable
 * state until the caller records it clean: a write after the copy then
 * needs no dirty-log record of its own.
 */
int ctl_copy_end_held(struct ctl *c, uint32_t pair, uint64_t r);

/*
 * Shim: a write to region r is about to be issued.  Waits up to wait_us
 * while the copier holds CIP (I7: never longer), then counts the write in
 * flight.  Returns 1 when the region was clean, so the caller must make its
 * intent durable (I2) and then call ctl_mark_dirty(); 0 when it was dirty.
 */
int ctl_write_begin(struct ctl *c, uint32_t pair, uint64_t r, uint64_t wait_us);

/* Shim: set DIRTY once the intent for region r is durable. */
void ctl_mark_dirty(struct ctl *c, uint32_t pair, uint64_t r);

/* Shim: the write to region r has completed (or failed). */
void ctl_write_end(struct ctl *c, uint32_t pair, uint64_t r);

/*
 * Shim, multi-region form with the journal: begin a write of regions
 * [first, first + n) of pair by the process in slot proc (from
 * ctl_proc_attach).  For each region, waits out CIP for at most wait_us in
 * all (I7), then counts the write in flight.  *entry receives the journal
 * entry (-1 when the journal was full: the counts are then not repairable
 * after a crash, which only keeps regions dirty).  *lo and *hi receive the
 * span of regions that were clean (*lo > *hi when none was): the caller
 * makes the intent for that span durable, then calls ctl_mark_dirty_range.
 */
void ctl_wbegin(struct ctl *c, int proc, uint32_t pair, uint64_t first, uint64_t n,
		uint64_t wait_us, int *entry, uint64_t *lo, uint64_t *hi);

/* Shim: set DIRTY on regions [lo, hi] of pair. */
void ctl_mark_dirty_range(struct ctl *c, uint32_t pair, uint64_t lo, uint64_t hi);

/* Shim: the write begun with ctl_wbegin completed (or failed). */
void ctl_wend(struct ctl *c, int proc, uint32_t pair, uint64_t first, uint64_t n, int entry);

/*
 * Claim a process slot for pid (with its start time) and return its index,
 * or -ENOSPC.  ctl_proc_detach frees it (its journal must be empty).
 */
int ctl_proc_attach(struct ctl *c, pid_t pid, uint64_t start);
void ctl_proc_detach(struct ctl *c, int proc);

/*
 * Copier: for every process slot whose process is gone (or whose pid now
 * names another process), take back the in-flight counts its journal holds
 * and free the slot.  Returns the number of slots repaired.
 */
unsigned ctl_repair_dead(struct ctl *c);

/* Start time of pid (clock ticks since boot); 0 when unknown or when the
 * process has exited (a zombie its parent has not reaped yet counts as
 * exited: containers whose first process does not reap orphans keep them
 * for long). */
uint64_t ctl_proc_start(pid_t pid);

/* Number of regions of pair p with DIRTY set (a scan; for status). */
uint64_t ctl_dirty_count(const struct ctl *c, uint32_t pair);

/*
 * Attached-process table.  ctl_proc_register claims a slot for the calling
 * process (0 or -ENOSPC); ctl_proc_unregister frees it; ctl_live_procs counts
 * slots whose process is alive and is not `except`.
 */
int ctl_proc_register(struct ctl *c, pid_t pid);
void ctl_proc_unregister(struct ctl *c, pid_t pid);
unsigned ctl_live_procs(const struct ctl *c, pid_t except);

#endif
