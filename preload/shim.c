/*
 * shim: constructor, real functions, the session as the shim sees it, fd
 * classification and the write-tracking protocol shared by every wrapper.
 *
 * Session: $VOLMIG_STATE names the state directory.  Until its control block
 * (STATE/ctl) exists the shim passes everything through, and looks for it
 * again at each write to a file or block device, so a process started
 * before `volmig setup` picks the session up at its first write after it.
 * Attaching takes the shared attach lock (held for the life of the process
 * and its children); a process that finds itself alone first resets the
 * block (ctl_reset) so nothing a dead process left is trusted.
 *
 * Threads: every thread of the application runs the wrappers concurrently.
 * Attach and segment creation are serialised by S.mu (once per process);
 * the per-write path takes no lock when its regions are already dirty.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "dlog.h"
#include "region.h"

#define FD_CACHE 65536
#define TGT_MODES 6 /* target fds per pair: see tgt_mode() */
#define WAIT_US_DEFAULT 100000 /* I7: longest wait for a region under copy */

__thread int shim_busy __attribute__((tls_model("initial-exec")));
const _Atomic uint32_t *_Atomic shim_state_word;

static struct {
	bool enabled;             /* VOLMIG_STATE is set */
	char dir[PATH_MAX];
	char lib_path[PATH_MAX];  /* this library, for exec'd programs */
	pthread_mutex_t mu;       /* attach and segment creation */
	_Atomic int attached;
	struct ctl ctl;
	int lock_fd;
	int proc;                 /* our slot in the control block */
	uint64_t start;           /* our start time */
	_Atomic int seg_ready;
	struct dlog_writer seg;
	uint64_t wait_us;
	_Atomic uint32_t gen;     /* bumped on attach: fd classes are stale */
	bool warned_corrupt;
	_Atomic int tgt[CTL_MAX_PAIRS][TGT_MODES]; /* target fds + 1, per tgt_mode() */
} S = { .mu = PTHREAD_MUTEX_INITIALIZER, .lock_fd = -1, .proc = -1 };

/* Per fd: (generation << 8) | class; class 0 unknown, 1 not a source,
 * 2 + p the source of pair p; FD_DIRECT: opened O_DIRECT; the generation
 * is 21 bits, above it the open flags the target fd must share. */
#define FD_DIRECT 0x80u
#define FD_DSYNC 0x20000000u  /* opened O_DSYNC */
#define FD_SYNC 0x40000000u   /* opened O_SYNC */
#define FD_APPEND 0x80000000u /* opened O_APPEND */
#define FD_FLAGS (FD_DSYNC | FD_SYNC | FD_APPEND)
#define FD_GEN 0x1fffffu
static _Atomic uint32_t fd_class[FD_CACHE];

void *shim_real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL) {
		static const char msg[] = "volmig shim: a libc function is missing\n";
		ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)n;
		abort();
	}
	return f;
}

void shim_warn(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n, saved = errno;

	n = snprintf(buf, sizeof(buf), "volmig shim[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	n = (int)REAL(write)(STDERR_FILENO, buf, (size_t)n);
	(void)n;
	errno = saved;
}

static void child_after_fork(void)
{
	shim_after_fork_child();
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *dir = getenv("VOLMIG_STATE"), *w = getenv("VOLMIG_WAIT_MS");
	Dl_info info;

	shim_busy++;
	S.wait_us = WAIT_US_DEFAULT;
	if (w != NULL && *w != '\0')
		S.wait_us = (uint64_t)strtoull(w, NULL, 10) * 1000;
	if (dladdr((void *)shim_init, &info) != 0 && info.dli_fname != NULL)
		snprintf(S.lib_path, sizeof(S.lib_path), "%s", info.dli_fname);
	if (dir != NULL && *dir != '\0' && strlen(dir) < sizeof(S.dir)) {
		/* an absolute path: the process may chdir later */
		if (realpath(dir, S.dir) == NULL)
			snprintf(S.dir, sizeof(S.dir), "%s", dir);
		S.enabled = true;
	}
	S.start = ctl_proc_start(getpid());
	pthread_atfork(NULL, NULL, child_after_fork);
	shim_busy--;
}

__attribute__((destructor)) static void shim_fini(void)
{
	/* a clean exit leaves no journal entries: free our slot */
	if (atomic_load_explicit(&S.attached, memory_order_acquire) && S.proc >= 0)
		ctl_proc_detach(&S.ctl, S.proc);
}

/* Map the control block if it exists.  Caller holds S.mu. */
static int attach_locked(void)
{
	char path[PATH_MAX + 16];
	int fd, rc;

	if (atomic_load_explicit(&S.attached, memory_order_relaxed))
		return 0;
	if (ctl_path(S.dir, path, sizeof(path)) < 0 || access(path, F_OK) < 0)
		return -ENOENT; /* no session (yet) */
	fd = ctl_lock_open(S.dir);
	if (fd < 0)
		return fd;
	rc = ctl_lock_exclusive(fd);
	if (rc == 0) {
		/* alone: nothing in the block is backed by a live process */
		rc = ctl_attach(&S.ctl, path);
		if (rc == 0)
			ctl_reset(&S.ctl);
		if (rc == 0)
			rc = ctl_lock_shared(fd);
	} else if (rc == -EAGAIN) {
		rc = ctl_lock_shared(fd);
		if (rc == 0)
			rc = ctl_attach(&S.ctl, path);
	}
	if (rc < 0) {
		if (S.ctl.hdr != NULL)
			ctl_detach(&S.ctl);
		REAL(close)(fd);
		if (rc != -ENOENT && !S.warned_corrupt) {
			S.warned_corrupt = true;
			shim_warn("the control block %s cannot be used (%s): writes to files and "
				  "block devices fail until volmig sync rebuilds it",
				  path, strerror(-rc));
		}
		return rc;
	}
	S.lock_fd = fd;
	S.proc = ctl_proc_attach(&S.ctl, getpid(), S.start);
	atomic_fetch_add_explicit(&S.gen, 1, memory_order_relaxed);
	atomic_store_explicit(&shim_state_word, &S.ctl.hdr->state, memory_order_release);
	atomic_store_explicit(&S.attached, 1, memory_order_release);
	return 0;
}

/*
 * Attached, or -errno: -ENOENT when there is no session (pass through),
 * another -errno when a session exists but its block cannot be used.
 */
static int ensure_attached(void)
{
	int rc;

	if (atomic_load_explicit(&S.attached, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&S.mu);
	rc = attach_locked();
	pthread_mutex_unlock(&S.mu);
	return rc;
}

void shim_fd_forget(int fd)
{
	if (fd >= 0 && fd < FD_CACHE)
		atomic_store_explicit(&fd_class[fd], 0, memory_order_relaxed);
}

static int classify(int fd)
{
	struct stat st;
	const struct ctl_hdr *h = S.ctl.hdr;

	if (fstat(fd, &st) < 0)
		return -1;
	for (uint32_t p = 0; p < h->npairs; p++) {
		const struct ctl_ident *id = &h->pairs[p].source_id;

		if (S_ISBLK(st.st_mode) && id->kind == 2 && id->rdev == (uint64_t)st.st_rdev)
			return (int)p;
		if (S_ISREG(st.st_mode) && id->kind == 1 && id->dev == (uint64_t)st.st_dev &&
		    id->ino == (uint64_t)st.st_ino)
			return (int)p;
	}
	return -1;
}

/* A file or block device (what a source can be)? */
static bool maybe_volume(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/* The FD_* bits of open flags fl (F_GETFL; 0 or less: none). */
static uint32_t open_bits(int fl)
{
	if (fl <= 0)
		return 0;
	return (fl & O_DIRECT ? FD_DIRECT : 0) | (fl & O_APPEND ? FD_APPEND : 0) |
	       ((fl & O_SYNC) == O_SYNC ? FD_SYNC : (fl & O_SYNC) == O_DSYNC ? FD_DSYNC : 0);
}

/* Pair of fd, -1 when not a source, or -2 - errno when a session exists
 * but cannot be used (fail closed, I8). */
static int source_pair(int fd)
{
	uint32_t gen, v;
	int p, rc;

	if (!S.enabled || fd < 0)
		return -1;
	if (!atomic_load_explicit(&S.attached, memory_order_acquire)) {
		if (!maybe_volume(fd))
			return -1;
		rc = ensure_attached();
		if (rc == -ENOENT)
			return -1;
		if (rc < 0)
			return -2 + rc;
	}
	gen = atomic_load_explicit(&S.gen, memory_order_relaxed) & FD_GEN;
	if (fd < FD_CACHE) {
		v = atomic_load_explicit(&fd_class[fd], memory_order_relaxed);
		if (((v & ~FD_FLAGS) >> 8) == gen && (v & 0x7f) != 0)
			return (int)(v & 0x7f) - 2;
	}
	p = classify(fd);
	if (fd < FD_CACHE) {
		int fl = p >= 0 ? fcntl(fd, F_GETFL) : 0;

		atomic_store_explicit(&fd_class[fd],
				      (gen << 8) | (uint32_t)(p + 2) |
					      open_bits(fl),
				      memory_order_relaxed);
	}
	return p;
}

bool shim_fd_append(int fd)
{
	int fl;

	if (fd >= 0 && fd < FD_CACHE) {
		uint32_t v = atomic_load_explicit(&fd_class[fd], memory_order_relaxed);

		if ((v & 0x7f) != 0)
			return (v & FD_APPEND) != 0;
	}
	fl = fcntl(fd, F_GETFL);
	return fl > 0 && (fl & O_APPEND);
}

/*
 * How the target fd for source fd must be opened: O_DIRECT when fd is
 * (as of its classification), and O_DSYNC or O_SYNC when fd is, so that a
 * write the program made synchronous is synchronous on the target too (the
 * mirrored copy after a commit's barrier, every write once committed).
 * An index into S.tgt: direct + 2 * (0 none, 1 O_DSYNC, 2 O_SYNC).
 */
static int tgt_mode(int fd)
{
	uint32_t v = 0;
	int fl;

	if (fd >= 0 && fd < FD_CACHE)
		v = atomic_load_explicit(&fd_class[fd], memory_order_relaxed);
	if ((v & 0x7f) == 0) {
		fl = fcntl(fd, F_GETFL);
		v = open_bits(fl);
	}
	return (v & FD_DIRECT ? 1 : 0) + (v & FD_SYNC ? 4 : v & FD_DSYNC ? 2 : 0);
}

int shim_file_pair(uint64_t dev, uint64_t ino)
{
	const struct ctl_hdr *h;

	if (!S.enabled || ensure_attached() < 0)
		return -1;
	h = S.ctl.hdr;
	for (uint32_t p = 0; p < h->npairs; p++) {
		const struct ctl_ident *id = &h->pairs[p].source_id;

		if (id->kind == 1 && id->dev == dev && id->ino == ino)
			return (int)p;
	}
	return -1;
}

int shim_source_pair(int fd)
{
	int p, saved = errno;

	shim_busy++;
	p = source_pair(fd);
	shim_busy--;
	errno = saved;
	return p < 0 ? -1 : p;
}

int shim_fd_tracked(int fd)
{
	int p, saved = errno;

	shim_busy++;
	p = source_pair(fd);
	if (p < -1)
		p = -2; /* a session whose block cannot be used: fail the write */
	else if (p == -1 && S.enabled && !atomic_load_explicit(&S.attached, memory_order_acquire) &&
		 maybe_volume(fd))
		p = -2; /* no block yet: the write holds the attach lock */
	shim_busy--;
	errno = saved;
	return p;
}

const char *shim_source_path(int pair, char *buf, size_t len)
{
	const struct ctl_hdr *h = S.ctl.hdr;
	const struct ctl_pair *cp;

	if (h == NULL || pair < 0 || (uint32_t)pair >= h->npairs)
		return "a source volume";
	cp = &h->pairs[pair];
	snprintf(buf, len, "%.*s", (int)cp->source_len,
		 (const char *)h + h->strtab_off + cp->source_off);
	return buf;
}

const struct ctl *shim_ctl(void)
{
	return atomic_load_explicit(&S.attached, memory_order_acquire) ? &S.ctl : NULL;
}

uint64_t shim_wait_us(void)
{
	return S.wait_us;
}

int shim_target_fd(int pair, int srcfd)
{
	const struct ctl_hdr *h = S.ctl.hdr;
	const struct ctl_pair *cp;
	char path[PATH_MAX];
	static const int open_sync[3] = { 0, O_DSYNC, O_SYNC };
	int mode, fd;

	if (h == NULL || pair < 0 || (uint32_t)pair >= h->npairs)
		return -EINVAL;
	shim_busy++;
	mode = tgt_mode(srcfd);
	fd = atomic_load_explicit(&S.tgt[pair][mode], memory_order_acquire) - 1;
	if (fd < 0) {
		pthread_mutex_lock(&S.mu);
		fd = atomic_load_explicit(&S.tgt[pair][mode], memory_order_relaxed) - 1;
		if (fd < 0) {
			cp = &h->pairs[pair];
			snprintf(path, sizeof(path), "%.*s", (int)cp->target_len,
				 (const char *)h + h->strtab_off + cp->target_off);
			fd = open(path, O_RDWR | O_CLOEXEC | (mode & 1 ? O_DIRECT : 0) |
						open_sync[mode >> 1]);
			if (fd < 0) {
				fd = -errno;
			} else {
				/* out of the way of programs that close or dup2 low fds */
				int hi = fcntl(fd, F_DUPFD_CLOEXEC, 512);

				if (hi >= 0) {
					REAL(close)(fd);
					fd = hi;
				}
				atomic_store_explicit(&S.tgt[pair][mode], fd + 1, memory_order_release);
			}
		}
		pthread_mutex_unlock(&S.mu);
	}
	shim_busy--;
	return fd;
}

void shim_target_fd_lost(int pair, int fd)
{
	for (int m = 0; m < TGT_MODES; m++) {
		int want = fd + 1;

		atomic_compare_exchange_strong(&S.tgt[pair][m], &want, 0);
	}
}

/* Our dirty-log segment, created at the first clean-to-dirty transition. */
static int segment(struct dlog_writer **out)
{
	char dir[PATH_MAX + 16], name[64], path[PATH_MAX + 96];
	int rc = 0, dfd;

	if (atomic_load_explicit(&S.seg_ready, memory_order_acquire)) {
		*out = &S.seg;
		return 0;
	}
	pthread_mutex_lock(&S.mu);
	if (!atomic_load_explicit(&S.seg_ready, memory_order_relaxed)) {
		snprintf(dir, sizeof(dir), "%s/log", S.dir);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		if (rc == 0)
			rc = dlog_seg_name(getpid(), S.start, name, sizeof(name));
		if (rc == 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, name);
			dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			rc = dlog_writer_create(&S.seg, dfd, path, S.ctl.hdr->session_id, getpid(),
						S.start, !(S.ctl.hdr->flags & 1));
			if (dfd >= 0)
				REAL(close)(dfd);
		}
		if (rc == 0)
			atomic_store_explicit(&S.seg_ready, 1, memory_order_release);
	}
	pthread_mutex_unlock(&S.mu);
	*out = &S.seg;
	return rc;
}

uint64_t shim_iov_len(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > UINT64_MAX - n)
			return UINT64_MAX;
		n += iov[i].iov_len;
	}
	return n;
}

/*
 * A write to a file or block device while the session has no control block
 * yet (before the first copier run): hold the attach lock shared until the
 * write ends, so the copier cannot build the block and start copying while
 * the write is in flight.  Nothing is clean yet then, so the write needs no
 * intent: the bulk copy comes after it.  Returns the lock fd, -1 when there
 * is no state directory (no session: pass through), or -2 when the block
 * appeared meanwhile (attach and track instead).
 */
static int hold_untracked(void)
{
	char path[PATH_MAX + 16];
	int fd = ctl_lock_open(S.dir);

	if (fd < 0)
		return -1;
	if (ctl_lock_untracked(fd) < 0) {
		REAL(close)(fd);
		return -1;
	}
	if (ctl_path(S.dir, path, sizeof(path)) == 0 && access(path, F_OK) == 0) {
		REAL(close)(fd);
		return -2;
	}
	return fd;
}

void shim_past_capacity(int pair)
{
	static _Atomic uint64_t said;
	uint64_t bit = UINT64_C(1) << (pair & 63), size = S.ctl.hdr->pairs[pair].size;
	char name[PATH_MAX];

	if (atomic_fetch_or_explicit(&said, bit, memory_order_relaxed) & bit)
		return;
	shim_warn("a write reaches past the %llu bytes the migration of %s has room for; "
		  "the migration stops (volmig status), the write goes on",
		  (unsigned long long)size, shim_source_path(pair, name, sizeof(name)));
}

/* Say once that a write failed because its intent could not be logged. */
static void log_failed(int rc)
{
	static _Atomic bool said;

	if (atomic_exchange_explicit(&said, true, memory_order_relaxed))
		return;
	shim_warn("the dirty log in %s/log cannot be written or flushed (%s): a write to a "
		  "region not yet dirty fails (after a failed flush, until the program is "
		  "restarted)",
		  S.dir, strerror(-rc));
}

/* Count a write of len bytes at off to the source of pair in flight and make
 * the intent of its clean regions durable.  Caller holds shim_busy. */
static int track_regions(int pair, uint64_t off, uint64_t len, struct shim_track *t)
{
	struct dlog_writer *w;
	uint64_t size, lo, hi;
	int rc;

	size = S.ctl.hdr->pairs[pair].size;
	if (len != SHIM_TO_END && (off >= size || len > size - off))
		shim_past_capacity(pair);
	if (off >= size)
		return 0; /* past what the session tracks: the copier stops */
	if (len > size - off)
		len = size - off;
	t->pair = (uint32_t)pair;
	region_span(off, len, S.ctl.hdr->region_shift, &t->first, &t->n);
	ctl_wbegin(&S.ctl, S.proc, t->pair, t->first, t->n, S.wait_us, &t->entry, &lo, &hi);
	if (lo <= hi) {
		/* I2: the intent is durable before the write is issued */
		rc = segment(&w);
		if (rc == 0)
			rc = dlog_append(w, t->pair, lo, (uint32_t)(hi - lo + 1));
		if (rc < 0) {
			ctl_wend(&S.ctl, S.proc, t->pair, t->first, t->n, t->entry);
			log_failed(rc);
			return rc;
		}
		/* rc 1: tracking lost but durably flagged; the copier re-copies */
		ctl_mark_dirty_range(&S.ctl, t->pair, lo, hi);
	}
	t->active = true;
	return 0;
}

int shim_track_pair(int pair, uint64_t off, uint64_t len, struct shim_track *t)
{
	int rc, saved = errno;

	t->active = false;
	t->hold = -1;
	if (len == 0)
		return 0;
	shim_busy++;
	rc = track_regions(pair, off, len, t);
	shim_busy--;
	errno = saved;
	return rc;
}

int shim_track_begin(int fd, uint64_t off, uint64_t len, struct shim_track *t)
{
	int pair, rc = 0, saved = errno;

	t->active = false;
	t->hold = -1;
	if (!S.enabled || len == 0)
		return 0;
	shim_busy++;
	pair = source_pair(fd);
	if (pair == -1 && !atomic_load_explicit(&S.attached, memory_order_acquire) &&
	    maybe_volume(fd)) {
		int h = hold_untracked();

		if (h >= 0) {
			t->hold = h;
			t->active = true;
			goto out;
		}
		if (h == -2)
			pair = source_pair(fd);
	}
	if (pair == -1)
		goto out;
	if (pair < -1) {
		rc = pair + 2; /* a session we cannot track: fail closed */
		goto out;
	}
	rc = track_regions(pair, off, len, t);
out:
	shim_busy--;
	errno = saved;
	return rc;
}

void shim_track_end(struct shim_track *t)
{
	if (!t->active)
		return;
	if (t->hold >= 0) {
		shim_busy++;
		REAL(close)(t->hold); /* lets go of the attach lock */
		shim_busy--;
		t->hold = -1;
		t->active = false;
		return;
	}
	ctl_wend(&S.ctl, S.proc, t->pair, t->first, t->n, t->entry);
	t->active = false;
}

int shim_track_again(struct shim_track *t)
{
	uint64_t lo, hi;

	if (!t->active || t->hold >= 0 || !atomic_load_explicit(&S.attached, memory_order_acquire))
		return -EINVAL;
	/* the parent holds the regions dirty: nothing to log */
	ctl_wbegin(&S.ctl, S.proc, t->pair, t->first, t->n, S.wait_us, &t->entry, &lo, &hi);
	if (lo <= hi)
		ctl_mark_dirty_range(&S.ctl, t->pair, lo, hi);
	return 0;
}

void shim_after_fork_child(void)
{
	pthread_mutex_init(&S.mu, NULL);
	S.start = ctl_proc_start(getpid());
	if (atomic_load_explicit(&S.seg_ready, memory_order_relaxed)) {
		/* the parent's segment is the parent's: ours is made on demand */
		REAL(close)(S.seg.fd);
		S.seg.fd = -1;
		atomic_store_explicit(&S.seg_ready, 0, memory_order_relaxed);
	}
	if (atomic_load_explicit(&S.attached, memory_order_relaxed))
		S.proc = ctl_proc_attach(&S.ctl, getpid(), S.start);
	shim_aio_reset();
	shim_maps_after_fork();
}

/* Does env hold NAME=...?  Returns the entry or NULL. */
static char *env_get(char *const envp[], const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i];
	return NULL;
}

char **shim_env_for_exec(char *const envp[])
{
	char *pre = env_get(envp, "LD_PRELOAD"), *st = env_get(envp, "VOLMIG_STATE");
	bool need_pre = S.lib_path[0] && (pre == NULL || strstr(pre, S.lib_path) == NULL);
	bool need_st = S.enabled && st == NULL;
	size_t n = 0, k = 0;
	char **env;

	if (!need_pre && !need_st)
		return (char **)envp;
	while (envp != NULL && envp[n] != NULL)
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (env == NULL)
		return (char **)envp;
	for (size_t i = 0; i < n; i++) {
		if (need_pre && envp[i] == pre)
			continue;
		env[k++] = envp[i];
	}
	if (need_pre) {
		size_t len = strlen(S.lib_path) + (pre ? strlen(pre) : 0) + 16;
		char *v = malloc(len);
		if (v != NULL) {
			if (pre != NULL && pre[11] != '\0')
				snprintf(v, len, "%s %s", pre, S.lib_path);
			else
				snprintf(v, len, "LD_PRELOAD=%s", S.lib_path);
			env[k++] = v;
		}
	}
	if (need_st) {
		size_t len = strlen(S.dir) + 16;
		char *v = malloc(len);
		if (v != NULL) {
			snprintf(v, len, "VOLMIG_STATE=%s", S.dir);
			env[k++] = v;
		}
	}
	env[k] = NULL;
	return env;
}

void shim_env_free(char **env, char *const envp[])
{
	/* only reached when exec failed; the strings we added are small and
	 * the array is freed */
	if (env != (char **)envp)
		free(env);
}
