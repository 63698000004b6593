/*
 * faultio: a test preload that makes chosen I/O calls fail.
 *
 *   VOLMIG_FAULT="rule[;rule...]" LD_PRELOAD=libfaultio.so PROGRAM...
 *
 * A rule is a comma-separated list of key=value:
 *
 *   path=SUBSTRING  the call's fd must name a path containing SUBSTRING
 *                   (readlink of /proc/self/fd/N; default: any fd)
 *   op=CLASS        read   read, pread(64), preadv(64)(v2), readv, __*_chk
 *                   write  write, pwrite(64), pwritev(64)(v2), writev
 *                   sync   fsync, fdatasync, sync_file_range
 *                   alloc  fallocate(64), posix_fallocate(64), ftruncate(64)
 *                   any    all of them (default)
 *                   io_submit counts each iocb as a read, write or sync.
 *   call=NAME       only that function (fdatasync, pwrite64, io_submit...;
 *                   the glibc name the program calls; default: any)
 *   err=WHAT        EIO (default), ENOSPC, EDQUOT, EINTR, EAGAIN: fail with
 *                   that errno and do nothing; short: do the first half of
 *                   the transfer for real (at least 1 byte) and return its
 *                   length (reads and writes of 2 bytes or more only)
 *   delay=MS        fail nothing: wait MS milliseconds, then make the call
 *                   for real (a slow disk; not with err=)
 *   after=N         let the first N matching calls through (default 0)
 *   count=M         inject at most M times (default: no limit)
 *   prob=P          inject on a matching call with probability P (0..1,
 *                   default 1), drawn from seed S (default 1): the draw is
 *                   a function of S and the call's index, so a run repeats
 *
 * Rules are tried in order; the first that injects wins, and the rules after
 * it do not see that call.  Counters are per process (a child starts from
 * its parent's at fork).  A malformed VOLMIG_FAULT is fatal (exit 2), so a
 * test never runs without the faults it asked for.  With VOLMIG_FAULT_LOG=1
 * each injection is logged on stderr with one write(2):
 *
 *   faultio: EIO on write to /x/tgt.img at offset 65536 (pwrite64)
 *
 * io_submit: a fault on the first iocb fails the call (libaio style,
 * -errno); on iocb i > 0 it submits iocbs [0, i) and returns i, and the
 * errno comes when the caller submits iocb i again, as the kernel does.
 * short submits the first half of the iocbs.  Completions are never
 * altered.  syscall(SYS_io_submit, ...) gets the same faults (-1, errno;
 * the errno of a fault on iocb i > 0 is not kept).
 *
 * Stacking with the shim (libvolmig.so): the shim resolves libc with
 * dlsym(RTLD_NEXT), and its own dirty-log I/O calls libc names through the
 * PLT, so with LD_PRELOAD="libvolmig.so libfaultio.so" an application
 * write goes shim -> faultio -> libc (the fault is seen by the shim after
 * it tracked the write) and the shim's segment I/O goes through faultio
 * too.  In the other order a fault on an application write is injected
 * before the shim sees it.
 *
 * Paths are cached per fd together with the file's device and inode, and
 * an entry is used only while fstat still gives that identity: that covers
 * fds closed or duplicated by calls no preload sees (fclose, close_range,
 * fcntl(F_DUPFD), exec), not only close and dup.
 *
 * Rules every wrapper follows: a per-thread guard sends faultio's own calls
 * (and any re-entry) straight to the next definition; errno is left alone
 * unless a fault is injected; real functions are resolved in a constructor
 * and lazily.  libc (and libdl) only.  Any thread of the process may run
 * the wrappers: counters are atomic; a path cache entry is used under a
 * try-lock, and looked up uncached when it is taken.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16
#define MAX_SUBSTR 256
#define FD_CACHE 4096
#define CACHE_PATH 512
#define MAX_IOV 1024 /* IOV_MAX on Linux */

enum op_class { OP_READ = 1 << 0, OP_WRITE = 1 << 1, OP_SYNC = 1 << 2, OP_ALLOC = 1 << 3 };
#define OP_ANY (OP_READ | OP_WRITE | OP_SYNC | OP_ALLOC)

struct rule {
	char path[MAX_SUBSTR]; /* "" matches every fd */
	char call[32];         /* "" matches every wrapper */
	unsigned ops;
	int err;               /* errno, or 0 for a short transfer */
	bool err_given;
	uint64_t delay_ms;     /* a delay rule: wait, then pass the call on */
	uint64_t after, count, seed;
	double prob;
	_Atomic uint64_t seen;  /* matching calls so far */
	_Atomic uint64_t fired; /* injections so far */
};

struct path_entry {
	atomic_flag lock;
	bool valid;
	dev_t dev;
	ino_t ino;
	char path[CACHE_PATH];
};

static struct rule rules[MAX_RULES];
static unsigned nrules;
static unsigned ops_wanted; /* union of the rules' classes: skip work early */
static bool log_on;
static _Atomic int configured; /* 0 not yet, 1 parsing, 2 done */
static struct path_entry cache[FD_CACHE];

/* Per-thread guard: nonzero while faultio itself is working. */
static __thread int busy __attribute__((tls_model("initial-exec")));

/* Fortified reads (_FORTIFY_SOURCE): glibc's own go to the system call
 * directly, so they are wrapped too. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);

/* Every function wrapped here but io_submit (see aio_next). */
#define WRAPPED(X)                                                                        \
	X(read) X(write) X(pread) X(pread64) X(pwrite) X(pwrite64) X(__read_chk)          \
	X(__pread_chk) X(__pread64_chk) X(readv) X(writev) X(preadv) X(preadv64)          \
	X(preadv2) X(preadv64v2) X(pwritev) X(pwritev64) X(pwritev2) X(pwritev64v2)       \
	X(fsync) X(fdatasync) X(sync_file_range) X(ftruncate) X(ftruncate64) X(fallocate) \
	X(fallocate64) X(posix_fallocate) X(posix_fallocate64)

/* The next definitions (dlsym RTLD_NEXT): resolved in the constructor, and
 * lazily for calls that come before it. */
#define REAL_DECLARE(fn) static __typeof__(fn) *_Atomic real_##fn;
WRAPPED(REAL_DECLARE)

#define REAL(fn)                                                                          \
	({                                                                                \
		__typeof__(fn) *f_ = atomic_load_explicit(&real_##fn, memory_order_relaxed); \
		if (__builtin_expect(f_ == NULL, 0)) {                                    \
			f_ = (__typeof__(fn) *)real_lookup(#fn);                         \
			atomic_store_explicit(&real_##fn, f_, memory_order_relaxed);     \
		}                                                                         \
		f_;                                                                       \
	})

static void *real_lookup(const char *name);

static void *real_lookup(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL) {
		static const char msg[] = "faultio: a libc function is missing\n";
		ssize_t n = syscall(SYS_write, STDERR_FILENO, msg, sizeof(msg) - 1);
		(void)n;
		abort();
	}
	return f;
}

/* stderr, one write(2), bypassing every wrapper; errno preserved. */
static void vsay(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vsay(const char *fmt, va_list ap)
{
	char buf[1024];
	int n, saved = errno;

	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	n = (int)syscall(SYS_write, STDERR_FILENO, buf, (size_t)n);
	errno = saved;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* A malformed VOLMIG_FAULT: say so and exit. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	_exit(2);
}

static const struct {
	const char *name;
	int err;
} err_names[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EINTR", EINTR },
	{ "EAGAIN", EAGAIN }, { "short", 0 },
};

static const char *err_name(int err)
{
	for (size_t i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
		if (err_names[i].err == err)
			return err_names[i].name;
	return "?";
}

static uint64_t num_parse(const char *key, const char *v)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || *v == '-')
		die("faultio: VOLMIG_FAULT: %s wants a number", key);
	return (uint64_t)n;
}

/* One key=value of rule r (kv is modified). */
static void rule_set(struct rule *r, char *kv)
{
	char *v = strchr(kv, '=');

	if (v == NULL)
		die("faultio: VOLMIG_FAULT: '%s' is not key=value", kv);
	*v++ = '\0';
	if (strcmp(kv, "path") == 0) {
		if (strlen(v) >= sizeof(r->path))
			die("faultio: VOLMIG_FAULT: path '%s' is too long", v);
		strcpy(r->path, v);
	} else if (strcmp(kv, "call") == 0) {
		if (strlen(v) >= sizeof(r->call))
			die("faultio: VOLMIG_FAULT: call=%s: no such function here", v);
		strcpy(r->call, v);
	} else if (strcmp(kv, "op") == 0) {
		if (strcmp(v, "read") == 0)
			r->ops = OP_READ;
		else if (strcmp(v, "write") == 0)
			r->ops = OP_WRITE;
		else if (strcmp(v, "sync") == 0)
			r->ops = OP_SYNC;
		else if (strcmp(v, "alloc") == 0)
			r->ops = OP_ALLOC;
		else if (strcmp(v, "any") == 0)
			r->ops = OP_ANY;
		else
			die("faultio: VOLMIG_FAULT: op=%s: want read, write, sync, alloc or any", v);
	} else if (strcmp(kv, "err") == 0) {
		size_t i, n = sizeof(err_names) / sizeof(err_names[0]);

		for (i = 0; i < n && strcmp(err_names[i].name, v) != 0; i++)
			;
		if (i == n)
			die("faultio: VOLMIG_FAULT: err=%s: want EIO, ENOSPC, EDQUOT, EINTR, "
			    "EAGAIN or short", v);
		r->err = err_names[i].err;
		r->err_given = true;
	} else if (strcmp(kv, "delay") == 0) {
		r->delay_ms = num_parse("delay", v);
		if (r->delay_ms == 0)
			die("faultio: VOLMIG_FAULT: delay wants a number of milliseconds above 0");
	} else if (strcmp(kv, "after") == 0) {
		r->after = num_parse("after", v);
	} else if (strcmp(kv, "count") == 0) {
		r->count = num_parse("count", v);
	} else if (strcmp(kv, "seed") == 0) {
		r->seed = num_parse("seed", v);
	} else if (strcmp(kv, "prob") == 0) {
		char *end;

		errno = 0;
		r->prob = strtod(v, &end);
		if (errno != 0 || end == v || *end != '\0' || !(r->prob >= 0 && r->prob <= 1))
			die("faultio: VOLMIG_FAULT: prob=%s: want a number from 0 to 1", v);
	} else {
		die("faultio: VOLMIG_FAULT: unknown key '%s'", kv);
	}
}

static void config_parse(void)
{
	const char *env = getenv("VOLMIG_FAULT"), *lg = getenv("VOLMIG_FAULT_LOG");
	char spec[4096], *rs, *save_r = NULL;

	log_on = lg != NULL && strcmp(lg, "1") == 0;
	if (env == NULL || *env == '\0')
		return;
	if (strlen(env) >= sizeof(spec))
		die("faultio: VOLMIG_FAULT is too long");
	strcpy(spec, env);
	for (rs = strtok_r(spec, ";", &save_r); rs != NULL; rs = strtok_r(NULL, ";", &save_r)) {
		struct rule *r;
		char *kv, *save_k = NULL;

		if (nrules == MAX_RULES)
			die("faultio: VOLMIG_FAULT: more than %d rules", MAX_RULES);
		r = &rules[nrules++];
		r->ops = OP_ANY;
		r->err = EIO;
		r->count = UINT64_MAX;
		r->seed = 1;
		r->prob = 1.0;
		for (kv = strtok_r(rs, ",", &save_k); kv != NULL; kv = strtok_r(NULL, ",", &save_k))
			rule_set(r, kv);
		if (r->delay_ms != 0 && r->err_given)
			die("faultio: VOLMIG_FAULT: a rule has either delay= or err=, not both");
		ops_wanted |= r->ops;
	}
}

/* Parse once; a thread that comes while another parses waits for it. */
static void configure(void)
{
	int expect = 0;

	if (atomic_load_explicit(&configured, memory_order_acquire) == 2)
		return;
	if (atomic_compare_exchange_strong_explicit(&configured, &expect, 1, memory_order_acq_rel,
						    memory_order_acquire)) {
		config_parse();
		atomic_store_explicit(&configured, 2, memory_order_release);
		return;
	}
	while (atomic_load_explicit(&configured, memory_order_acquire) != 2)
		sched_yield();
}

/* splitmix64 of the seed and the call index: a repeatable draw in [0, 1). */
static double draw(uint64_t seed, uint64_t n)
{
	uint64_t z = seed ^ (n * UINT64_C(0x9e3779b97f4a7c15));

	z += UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}

/* The path fd names, into buf; false when it cannot be found. */
static bool fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return false;
	/* an entry another thread holds (or a parent held at fork) is not
	 * waited for: the path is then looked up uncached */
	if (fd < FD_CACHE &&
	    !atomic_flag_test_and_set_explicit(&cache[fd].lock, memory_order_acquire)) {
		struct path_entry *e = &cache[fd];
		bool hit = e->valid && e->dev == st.st_dev && e->ino == st.st_ino;

		if (!hit) {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			n = readlink(link, e->path, sizeof(e->path) - 1);
			e->valid = n >= 0;
			if (n >= 0) {
				e->path[n] = '\0';
				e->dev = st.st_dev;
				e->ino = st.st_ino;
			}
		}
		if (e->valid)
			snprintf(buf, len, "%s", e->path);
		hit = e->valid;
		atomic_flag_clear_explicit(&e->lock, memory_order_release);
		return hit;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

static const char *class_name(unsigned op);

/* A delay rule fired: log it, then wait its time out (signals resume it). */
static void delay(const struct rule *r, unsigned op, const char *call, const char *path)
{
	struct timespec ts = { (time_t)(r->delay_ms / 1000), (long)(r->delay_ms % 1000) * 1000000 };

	if (log_on)
		say("faultio: %llu ms delay on %s %s (%s)", (unsigned long long)r->delay_ms,
		    class_name(op), path, call);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Should this call (the wrapper `call`, of class op on fd, transferring len
 * bytes) fail?  Returns the rule that fires, or NULL (a delay rule that fires
 * has waited, and gives NULL).  path (PATH_MAX) receives the fd's path for
 * the log.  Caller holds the guard.
 */
static struct rule *decide(int fd, unsigned op, uint64_t len, const char *call, char *path)
{
	bool have_path = false, looked = false;

	configure();
	if (!(ops_wanted & op))
		return NULL;
	for (unsigned i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		uint64_t n, f;

		if (!(r->ops & op))
			continue;
		if (r->call[0] != '\0' && strcmp(r->call, call) != 0)
			continue;
		if (r->err == 0 && (len < 2 || op == OP_SYNC || op == OP_ALLOC))
			continue; /* nothing to shorten */
		if (!looked) {
			have_path = fd_path(fd, path, PATH_MAX);
			looked = true;
		}
		if (r->path[0] != '\0' && (!have_path || strstr(path, r->path) == NULL))
			continue;
		n = atomic_fetch_add_explicit(&r->seen, 1, memory_order_relaxed);
		if (n < r->after)
			continue;
		if (r->prob < 1.0 && draw(r->seed, n) >= r->prob)
			continue;
		f = atomic_load_explicit(&r->fired, memory_order_relaxed);
		do {
			if (f >= r->count)
				break;
		} while (!atomic_compare_exchange_weak_explicit(&r->fired, &f, f + 1,
								memory_order_relaxed,
								memory_order_relaxed));
		if (f >= r->count)
			continue;
		if (!have_path)
			snprintf(path, PATH_MAX, "fd %d", fd);
		if (r->delay_ms != 0) {
			delay(r, op, call, path);
			return NULL; /* the call goes on, late */
		}
		return r;
	}
	return NULL;
}

static const char *class_name(unsigned op)
{
	switch (op) {
	case OP_READ: return "read from";
	case OP_WRITE: return "write to";
	case OP_SYNC: return "sync of";
	default: return "allocation in";
	}
}

/* How many bytes a short transfer of len does. */
static size_t half(size_t len)
{
	return len / 2 > 0 ? len / 2 : 1;
}

#define OFF_NONE LLONG_MIN      /* the call has no offset */
#define OFF_CUR (LLONG_MIN + 1) /* the call works at fd's current offset */

/* Log one injection (with VOLMIG_FAULT_LOG=1). */
static void note(const struct rule *r, unsigned op, const char *call, const char *path, int fd,
		 long long off, uint64_t len)
{
	if (!log_on)
		return;
	if (off == OFF_CUR) {
		off = (long long)lseek(fd, 0, SEEK_CUR);
		if (off < 0)
			off = OFF_NONE; /* a pipe, a socket */
	}
	if (r->err == 0)
		say("faultio: short %s %s at offset %lld: %llu of %llu bytes (%s)",
		    op == OP_READ ? "read from" : "write to", path, off == OFF_NONE ? -1 : off,
		    (unsigned long long)half((size_t)len), (unsigned long long)len, call);
	else if (off == OFF_NONE)
		say("faultio: %s on %s %s (%s)", err_name(r->err), class_name(op), path, call);
	else
		say("faultio: %s on %s %s at offset %lld (%s)", err_name(r->err), class_name(op),
		    path, off, call);
}

/* Copy the first `want` bytes of iov[0..cnt) into out; the new count. */
static int iov_cut(const struct iovec *iov, int cnt, size_t want, struct iovec *out)
{
	int k = 0;

	for (int i = 0; i < cnt && want > 0 && k < MAX_IOV; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > want)
			out[k].iov_len = want;
		want -= out[k].iov_len;
		k++;
	}
	return k;
}

static uint64_t iov_len(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/*
 * The wrappers.  Each one: pass straight on under the guard; else decide,
 * and either fail (errno set), shorten (the real call with half the
 * length), or pass on with errno as the caller left it.
 */
#define ENTER()                                                                            \
	int saved_ = errno;                                                                \
	char path_[PATH_MAX];                                                              \
	struct rule *r_;                                                                   \
	busy++

#define LEAVE() (busy--, errno = saved_)

/* Plain transfer (fd, buf, len[, off]) with class op. */
#define XFER(op, name, fd, len, off, call_full, call_half)                                 \
	do {                                                                               \
		if (busy)                                                                  \
			return call_full;                                                  \
		ENTER();                                                                   \
		r_ = decide((fd), (op), (len), (name), path_);                             \
		if (r_ == NULL) {                                                          \
			LEAVE();                                                           \
			return call_full;                                                  \
		}                                                                          \
		note(r_, (op), (name), path_, (fd), (off), (len));                               \
		LEAVE();                                                                   \
		if (r_->err != 0) {                                                        \
			errno = r_->err;                                                   \
			return -1;                                                         \
		}                                                                          \
		return call_half;                                                          \
	} while (0)

ssize_t read(int fd, void *buf, size_t n)
{
	XFER(OP_READ, "read", fd, n, OFF_CUR, REAL(read)(fd, buf, n),
	     REAL(read)(fd, buf, half(n)));
}

ssize_t write(int fd, const void *buf, size_t n)
{
	XFER(OP_WRITE, "write", fd, n, OFF_CUR, REAL(write)(fd, buf, n),
	     REAL(write)(fd, buf, half(n)));
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	XFER(OP_READ, "pread", fd, n, (long long)off, REAL(pread)(fd, buf, n, off),
	     REAL(pread)(fd, buf, half(n), off));
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	XFER(OP_READ, "pread64", fd, n, (long long)off, REAL(pread64)(fd, buf, n, off),
	     REAL(pread64)(fd, buf, half(n), off));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	XFER(OP_WRITE, "pwrite", fd, n, (long long)off, REAL(pwrite)(fd, buf, n, off),
	     REAL(pwrite)(fd, buf, half(n), off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	XFER(OP_WRITE, "pwrite64", fd, n, (long long)off, REAL(pwrite64)(fd, buf, n, off),
	     REAL(pwrite64)(fd, buf, half(n), off));
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	XFER(OP_READ, "__read_chk", fd, n, OFF_CUR, REAL(__read_chk)(fd, buf, n, buflen),
	     REAL(__read_chk)(fd, buf, half(n), buflen));
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	XFER(OP_READ, "__pread_chk", fd, n, (long long)off, REAL(__pread_chk)(fd, buf, n, off, buflen),
	     REAL(__pread_chk)(fd, buf, half(n), off, buflen));
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
	XFER(OP_READ, "__pread64_chk", fd, n, (long long)off,
	     REAL(__pread64_chk)(fd, buf, n, off, buflen),
	     REAL(__pread64_chk)(fd, buf, half(n), off, buflen));
}

/* Vectored transfer: the short form passes the first half of the bytes. */
#define XFERV(op, name, fd, iov, cnt, off, call_full, call_cut)                            \
	do {                                                                               \
		struct iovec cut_[MAX_IOV];                                                \
		int ncut_;                                                                 \
		uint64_t len_;                                                             \
		if (busy || (cnt) <= 0 || (cnt) > MAX_IOV)                                 \
			return call_full;                                                  \
		ENTER();                                                                   \
		len_ = iov_len((iov), (cnt));                                              \
		r_ = decide((fd), (op), len_, (name), path_);                              \
		if (r_ == NULL) {                                                          \
			LEAVE();                                                           \
			return call_full;                                                  \
		}                                                                          \
		note(r_, (op), (name), path_, (fd), (off), len_);                                \
		LEAVE();                                                                   \
		if (r_->err != 0) {                                                        \
			errno = r_->err;                                                   \
			return -1;                                                         \
		}                                                                          \
		ncut_ = iov_cut((iov), (cnt), half((size_t)len_), cut_);                   \
		(void)ncut_;                                                               \
		return call_cut;                                                           \
	} while (0)

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	XFERV(OP_READ, "readv", fd, iov, cnt, OFF_CUR, REAL(readv)(fd, iov, cnt),
	      REAL(readv)(fd, cut_, ncut_));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	XFERV(OP_WRITE, "writev", fd, iov, cnt, OFF_CUR,
	      REAL(writev)(fd, iov, cnt), REAL(writev)(fd, cut_, ncut_));
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	XFERV(OP_READ, "preadv", fd, iov, cnt, (long long)off, REAL(preadv)(fd, iov, cnt, off),
	      REAL(preadv)(fd, cut_, ncut_, off));
}

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	XFERV(OP_READ, "preadv64", fd, iov, cnt, (long long)off,
	      REAL(preadv64)(fd, iov, cnt, off), REAL(preadv64)(fd, cut_, ncut_, off));
}

ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	XFERV(OP_READ, "preadv2", fd, iov, cnt, (long long)off,
	      REAL(preadv2)(fd, iov, cnt, off, flags), REAL(preadv2)(fd, cut_, ncut_, off, flags));
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
	XFERV(OP_READ, "preadv64v2", fd, iov, cnt, (long long)off,
	      REAL(preadv64v2)(fd, iov, cnt, off, flags),
	      REAL(preadv64v2)(fd, cut_, ncut_, off, flags));
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	XFERV(OP_WRITE, "pwritev", fd, iov, cnt, (long long)off,
	      REAL(pwritev)(fd, iov, cnt, off), REAL(pwritev)(fd, cut_, ncut_, off));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	XFERV(OP_WRITE, "pwritev64", fd, iov, cnt, (long long)off,
	      REAL(pwritev64)(fd, iov, cnt, off), REAL(pwritev64)(fd, cut_, ncut_, off));
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	XFERV(OP_WRITE, "pwritev2", fd, iov, cnt, (long long)off,
	      REAL(pwritev2)(fd, iov, cnt, off, flags),
	      REAL(pwritev2)(fd, cut_, ncut_, off, flags));
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
	XFERV(OP_WRITE, "pwritev64v2", fd, iov, cnt, (long long)off,
	      REAL(pwritev64v2)(fd, iov, cnt, off, flags),
	      REAL(pwritev64v2)(fd, cut_, ncut_, off, flags));
}

/* No transfer (sync, allocation): fail or pass on.  A short rule never
 * matches these. */
#define NOXFER(op, name, fd, off, call)                                                    \
	do {                                                                               \
		if (busy)                                                                  \
			return call;                                                       \
		ENTER();                                                                   \
		r_ = decide((fd), (op), 0, (name), path_);                                 \
		if (r_ == NULL) {                                                          \
			LEAVE();                                                           \
			return call;                                                       \
		}                                                                          \
		note(r_, (op), (name), path_, (fd), (off), 0);                                   \
		LEAVE();                                                                   \
		errno = r_->err;                                                           \
		return -1;                                                                 \
	} while (0)

int fsync(int fd)
{
	NOXFER(OP_SYNC, "fsync", fd, OFF_NONE, REAL(fsync)(fd));
}

int fdatasync(int fd)
{
	NOXFER(OP_SYNC, "fdatasync", fd, OFF_NONE, REAL(fdatasync)(fd));
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	NOXFER(OP_SYNC, "sync_file_range", fd, (long long)off,
	       REAL(sync_file_range)(fd, off, n, flags));
}

int ftruncate(int fd, off_t len)
{
	NOXFER(OP_ALLOC, "ftruncate", fd, (long long)len, REAL(ftruncate)(fd, len));
}

int ftruncate64(int fd, off64_t len)
{
	NOXFER(OP_ALLOC, "ftruncate64", fd, (long long)len, REAL(ftruncate64)(fd, len));
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	NOXFER(OP_ALLOC, "fallocate", fd, (long long)off, REAL(fallocate)(fd, mode, off, len));
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	NOXFER(OP_ALLOC, "fallocate64", fd, (long long)off,
	       REAL(fallocate64)(fd, mode, off, len));
}

/* posix_fallocate returns the error number instead of setting errno. */
#define PFALLOC(name, fd, off, call)                                                       \
	do {                                                                               \
		if (busy)                                                                  \
			return call;                                                       \
		ENTER();                                                                   \
		r_ = decide((fd), OP_ALLOC, 0, (name), path_);                             \
		if (r_ != NULL)                                                            \
			note(r_, OP_ALLOC, (name), path_, (fd), (off), 0);                       \
		LEAVE();                                                                   \
		return r_ == NULL ? call : r_->err;                                        \
	} while (0)

int posix_fallocate(int fd, off_t off, off_t len)
{
	PFALLOC("posix_fallocate", fd, (long long)off, REAL(posix_fallocate)(fd, off, len));
}

int posix_fallocate64(int fd, off64_t off, off64_t len)
{
	PFALLOC("posix_fallocate64", fd, (long long)off, REAL(posix_fallocate64)(fd, off, len));
}

/*
 * io_submit (libaio's, which returns -errno; the process may not have
 * libaio loaded, then the system call).  A fault on iocb i submits the ones
 * before it; short submits the first half of a batch of two or more.
 */
int io_submit(aio_context_t ctx, long nr, struct iocb **ios);

static int aio_class(const struct iocb *cb, uint64_t *len)
{
	*len = cb->aio_nbytes;
	switch (cb->aio_lio_opcode) {
	case IOCB_CMD_PREAD:
	case IOCB_CMD_PREADV:
		return OP_READ;
	case IOCB_CMD_PWRITE:
	case IOCB_CMD_PWRITEV:
		return OP_WRITE;
	case IOCB_CMD_FSYNC:
	case IOCB_CMD_FDSYNC:
		return OP_SYNC;
	default:
		return 0;
	}
}

/* Nonzero while this thread is in the next io_submit (libaio's makes its
 * system call through syscall(2): not to be faulted a second time). */
static __thread int in_next __attribute__((tls_model("initial-exec")));

static long aio_next(aio_context_t ctx, long nr, struct iocb **ios)
{
	static int (*_Atomic next)(aio_context_t, long, struct iocb **);
	static _Atomic int looked;
	int (*f)(aio_context_t, long, struct iocb **) =
		atomic_load_explicit(&next, memory_order_acquire);

	if (f == NULL && !atomic_load_explicit(&looked, memory_order_acquire)) {
		f = (int (*)(aio_context_t, long, struct iocb **))dlsym(RTLD_NEXT, "io_submit");
		atomic_store_explicit(&next, f, memory_order_release);
		atomic_store_explicit(&looked, 1, memory_order_release);
	}
	in_next++;
	long r = f != NULL ? f(ctx, nr, ios) : syscall(SYS_io_submit, ctx, nr, ios);
	in_next--;
	return f != NULL || r >= 0 ? r : -errno;
}

/*
 * A fault on iocb i > 0 is what the kernel does when iocb i cannot be
 * queued: the first i are, and the call returns i.  The caller submits the
 * rest again; the errno is then returned for that iocb, now the first.
 * Until then it waits here (a few per process: one per batch in flight).
 */
#define AIO_PENDING 64
static struct {
	_Atomic uintptr_t cb;
	int err;
} aio_pending[AIO_PENDING];

static void aio_defer(const struct iocb *cb, int err)
{
	for (unsigned k = 0; k < AIO_PENDING; k++) {
		uintptr_t zero = 0;

		/* claim the slot (1 is never an iocb), fill it, then publish:
		 * aio_take's acquire load of cb sees err */
		if (atomic_compare_exchange_strong_explicit(&aio_pending[k].cb, &zero, 1,
							    memory_order_acquire,
							    memory_order_relaxed)) {
			aio_pending[k].err = err;
			atomic_store_explicit(&aio_pending[k].cb, (uintptr_t)cb,
					      memory_order_release);
			return;
		}
	}
	/* full: the fault is dropped (the iocb was not submitted: no harm) */
}

/* The errno deferred for cb, or 0. */
static int aio_take(const struct iocb *cb)
{
	for (unsigned k = 0; k < AIO_PENDING; k++) {
		uintptr_t want = (uintptr_t)cb;

		if (atomic_load_explicit(&aio_pending[k].cb, memory_order_acquire) != want)
			continue;
		int err = aio_pending[k].err;
		if (atomic_compare_exchange_strong_explicit(&aio_pending[k].cb, &want, 0,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			return err;
	}
	return 0;
}

/*
 * Decide a fault for the batch ios[0..nr) (caller holds the guard): NULL,
 * or the rule that fired, with *take the iocbs to submit before it (0: fail
 * the call with the rule's errno).  defer: a fault on iocb i > 0 waits for
 * the caller to submit iocb i again (aio_defer).
 */
static struct rule *aio_fault(long nr, struct iocb **ios, long *take, bool defer)
{
	char path[PATH_MAX];
	struct rule *r = NULL;

	for (long i = 0; i < nr; i++) {
		uint64_t len;
		unsigned op = ios[i] != NULL ? (unsigned)aio_class(ios[i], &len) : 0;

		if (op == 0)
			continue;
		/* a short rule shortens the batch: it needs two iocbs or more */
		r = decide((int)ios[i]->aio_fildes, op, nr >= 2 && op != OP_SYNC ? 2 : 0, "io_submit",
			   path);
		if (r == NULL)
			continue;
		if (r->err == 0) {
			*take = nr / 2;
			if (log_on)
				say("faultio: short io_submit on %s: %ld of %ld iocbs", path, *take, nr);
		} else {
			*take = i;
			note(r, op, "io_submit", path, (int)ios[i]->aio_fildes,
			     op == OP_SYNC ? OFF_NONE : (long long)ios[i]->aio_offset, len);
			if (i > 0 && defer)
				aio_defer(ios[i], r->err);
		}
		break;
	}
	return r;
}

int io_submit(aio_context_t ctx, long nr, struct iocb **ios)
{
	int saved = errno, err;
	struct rule *r;
	long take = 0;

	if (busy || nr <= 0 || ios == NULL)
		return (int)aio_next(ctx, nr, ios);
	busy++;
	err = ios[0] != NULL ? aio_take(ios[0]) : 0;
	if (err != 0) {
		busy--;
		errno = saved;
		return -err;
	}
	r = aio_fault(nr, ios, &take, true);
	busy--;
	errno = saved;
	if (r == NULL)
		return (int)aio_next(ctx, nr, ios);
	if (take == 0)
		return -r->err;
	return (int)aio_next(ctx, take, ios);
}

/*
 * io_submit through syscall(2) (a program without libaio; the shim's own
 * target writes): the same faults, with the system call's -1 and errno.
 * A fault on iocb i > 0 submits the ones before it and returns i; the errno
 * is not kept for a resubmission.  Every other call passes straight on.
 */
long syscall(long nr, ...)
{
	static long (*_Atomic next)(long, ...);
	long (*f)(long, ...) = atomic_load_explicit(&next, memory_order_acquire);
	long a[6], take = 0;
	struct rule *r = NULL;
	va_list ap;
	int saved = errno;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (f == NULL) {
		f = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
		atomic_store_explicit(&next, f, memory_order_release);
	}
	if (nr == SYS_io_submit && !busy && !in_next && a[1] > 0 && a[2] != 0) {
		busy++;
		r = aio_fault(a[1], (struct iocb **)a[2], &take, false);
		busy--;
		errno = saved;
		if (r != NULL && take == 0) {
			errno = r->err;
			return -1;
		}
		if (r != NULL)
			a[1] = take;
	}
	return f(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* A function this libc lacks is left NULL here: only a call to it aborts. */
#define REAL_RESOLVE(fn)                                                                  \
	atomic_store_explicit(&real_##fn, (__typeof__(fn) *)dlsym(RTLD_NEXT, #fn),           \
			      memory_order_relaxed);

__attribute__((constructor)) static void faultio_init(void)
{
	busy++;
	configure();
	WRAPPED(REAL_RESOLVE)
	busy--;
}
