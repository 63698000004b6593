/*
 * fd: bookkeeping that keeps fd classification right (open, dup, close and
 * friends forget what was known of the fd they return or replace), the exec
 * family (an exec'd program keeps LD_PRELOAD and VOLMIG_STATE), syscall()
 * with the numbers of the calls the shim wraps, and the refusals of I8:
 * stdio streams opened for writing on a source (glibc writes them through
 * internal calls no wrapper sees), writable shared mappings of a source,
 * and io_uring (its submissions bypass every wrapper).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

long shim_sys_aio(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

static int forget_ret(int fd)
{
	if (fd >= 0)
		shim_fd_forget(fd);
	return fd;
}

/* open(2)'s mode argument is there only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, mode)                                                           \
	do {                                                                             \
		if ((flags) & (O_CREAT | O_TMPFILE)) {                                   \
			va_list ap_;                                                     \
			va_start(ap_, flags);                                            \
			mode = (mode_t)va_arg(ap_, int);                                 \
			va_end(ap_);                                                     \
		}                                                                        \
	} while (0)

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return forget_ret(REAL(open)(path, flags, mode));
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return forget_ret(REAL(open64)(path, flags, mode));
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return forget_ret(REAL(openat)(dirfd, path, flags, mode));
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return forget_ret(REAL(openat64)(dirfd, path, flags, mode));
}

int creat(const char *path, mode_t mode)
{
	return forget_ret(REAL(creat)(path, mode));
}

int creat64(const char *path, mode_t mode)
{
	return forget_ret(REAL(creat64)(path, mode));
}

int close(int fd)
{
	shim_fd_forget(fd);
	return REAL(close)(fd);
}

int close_range(unsigned first, unsigned last, int flags)
{
	int r = REAL(close_range)(first, last, flags);

	for (unsigned fd = first; r == 0 && fd <= last && fd < 65536; fd++)
		shim_fd_forget((int)fd);
	return r;
}

int dup(int fd)
{
	return forget_ret(REAL(dup)(fd));
}

int dup2(int fd, int fd2)
{
	return forget_ret(REAL(dup2)(fd, fd2));
}

int dup3(int fd, int fd2, int flags)
{
	return forget_ret(REAL(dup3)(fd, fd2, flags));
}

/* Bookkeeping after a successful fcntl of either name. */
static int fcntl_after(int fd, int cmd, int r)
{
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		forget_ret(r);
	if (cmd == F_SETFL && r == 0)
		shim_fd_forget(fd); /* O_DIRECT or O_APPEND may have changed */
	return r;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_after(fd, cmd, REAL(fcntl)(fd, cmd, arg));
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_after(fd, cmd, REAL(fcntl64)(fd, cmd, arg));
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t r = REAL(recvmsg)(fd, msg, flags);

	if (r >= 0 && msg != NULL) {
		/* fds passed over a socket (SCM_RIGHTS) are new to us */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int got;
				memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				shim_fd_forget(got);
			}
		}
	}
	return r;
}

/* I8: a stream glibc writes through its internal calls cannot be tracked. */
static bool writable_mode(const char *mode)
{
	return mode != NULL && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
}

static FILE *refuse_stream(FILE *f, const char *what)
{
	int fd = f != NULL ? fileno(f) : -1, pair;
	char path[256];

	pair = fd >= 0 ? shim_source_pair(fd) : -1;
	if (pair >= 0) {
		shim_busy++;
		fclose(f);
		shim_warn("refusing a writable stdio stream on %s (opened as %s): it is being "
			  "migrated and stdio writes cannot be tracked; use open() and write() (EACCES)",
			  shim_source_path(pair, path, sizeof(path)), what);
		shim_busy--;
		errno = EACCES;
		return NULL;
	}
	return f;
}

FILE *fopen(const char *path, const char *mode)
{
	FILE *f = REAL(fopen)(path, mode);

	if (f != NULL)
		shim_fd_forget(fileno(f));
	return writable_mode(mode) ? refuse_stream(f, path) : f;
}

FILE *fopen64(const char *path, const char *mode)
{
	FILE *f = REAL(fopen64)(path, mode);

	if (f != NULL)
		shim_fd_forget(fileno(f));
	return writable_mode(mode) ? refuse_stream(f, path) : f;
}

FILE *fdopen(int fd, const char *mode)
{
	FILE *f = REAL(fdopen)(fd, mode);

	return writable_mode(mode) ? refuse_stream(f, "fd") : f;
}

FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	FILE *f = REAL(freopen)(path, mode, stream);

	if (f != NULL)
		shim_fd_forget(fileno(f));
	return writable_mode(mode) ? refuse_stream(f, path) : f;
}


/*
 * I8: a writable shared mapping of a source writes it behind our back.  It
 * is refused with EACCES -- unless VOLMIG_ALLOW_SHARED_MMAP=1 (volmig exec
 * --allow-shared-mmap): then the mapped regions are counted in flight (and
 * logged dirty) from mmap to munmap, so the copier cannot count them clean
 * while mapped and a commit waits for the mapping to go.  In the committed
 * state the mapping is made of the target instead.
 */
#define MAPS 64

static struct {
	void *addr;
	size_t len;
	struct shim_track t;
} maps[MAPS];
static pthread_mutex_t maps_mu = PTHREAD_MUTEX_INITIALIZER;

static bool shared_writable(int prot, int flags, int fd)
{
	return fd >= 0 && (prot & PROT_WRITE) && (flags & MAP_SHARED);
}

static bool mmap_allowed(void)
{
	const char *v = getenv("VOLMIG_ALLOW_SHARED_MMAP");

	return v != NULL && strcmp(v, "1") == 0;
}

/* A shared writable mapping of the source of pair: refuse, redirect or
 * track.  Returns the mapping (or MAP_FAILED with errno). */
static void *map_source(int pair, void *addr, size_t len, int prot, int flags, int fd, off_t off,
			void *(*real)(void *, size_t, int, int, int, off_t))
{
	char path[256];
	struct shim_track t;
	void *p;
	int rc;

	if (shim_write_route() == SHIM_TARGET) {
		int tfd = shim_target_fd(pair, fd);

		if (tfd < 0) {
			errno = -tfd;
			return MAP_FAILED;
		}
		return real(addr, len, prot, flags, tfd, off);
	}
	if (!mmap_allowed()) {
		shim_busy++;
		shim_warn("refusing a writable shared mapping of %s: it is being migrated and writes "
			  "through a mapping cannot be tracked (EACCES; volmig exec --allow-shared-mmap "
			  "keeps the mapped regions dirty instead)",
			  shim_source_path(pair, path, sizeof(path)));
		shim_busy--;
		errno = EACCES;
		return MAP_FAILED;
	}
	rc = shim_track_begin(fd, (uint64_t)off, len, &t);
	if (rc < 0) {
		errno = -rc;
		return MAP_FAILED;
	}
	p = real(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED || !t.active) {
		if (t.active)
			shim_track_end(&t);
		return p;
	}
	pthread_mutex_lock(&maps_mu);
	for (int i = 0; i < MAPS; i++) {
		if (maps[i].addr == NULL) {
			maps[i].addr = p;
			maps[i].len = len;
			maps[i].t = t;
			t.active = false;
			break;
		}
	}
	pthread_mutex_unlock(&maps_mu);
	if (t.active) {
		/* no room to remember it: its regions stay in flight until exit */
		shim_busy++;
		shim_warn("more than %d shared writable mappings of sources: the regions of the "
			  "newest stay dirty until the program exits", MAPS);
		shim_busy--;
	}
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int pair;

	if (shim_busy || !shared_writable(prot, flags, fd) || (pair = shim_source_pair(fd)) < 0)
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	return map_source(pair, addr, len, prot, flags, fd, off, REAL(mmap));
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int pair;

	if (shim_busy || !shared_writable(prot, flags, fd) || (pair = shim_source_pair(fd)) < 0)
		return REAL(mmap64)(addr, len, prot, flags, fd, off);
	return map_source(pair, addr, len, prot, flags, fd, off, REAL(mmap64));
}

/* The end of a tracked mapping (only when it is unmapped whole: a part
 * still mapped may still be written). */
int munmap(void *addr, size_t len)
{
	int r = REAL(munmap)(addr, len);

	if (r == 0 && !shim_busy) {
		struct shim_track done[MAPS];
		int n = 0;

		pthread_mutex_lock(&maps_mu);
		for (int i = 0; i < MAPS; i++) {
			char *a = maps[i].addr;

			if (a != NULL && a >= (char *)addr && a + maps[i].len <= (char *)addr + len) {
				done[n++] = maps[i].t;
				maps[i].addr = NULL;
			}
		}
		pthread_mutex_unlock(&maps_mu);
		for (int i = 0; i < n; i++)
			shim_track_end(&done[i]);
	}
	return r;
}

/* A forked child has the mappings too: it counts them itself (the parent's
 * count ends when the parent unmaps). */
void shim_maps_after_fork(void)
{
	pthread_mutex_init(&maps_mu, NULL);
	for (int i = 0; i < MAPS; i++)
		if (maps[i].addr != NULL && shim_track_again(&maps[i].t) < 0)
			maps[i].addr = NULL; /* no journal room: its regions stay dirty */
}

/* vfork's child shares our memory: run fork so the shim's state stays the
 * parent's (the child's fork handler gives it its own). */
pid_t vfork(void)
{
	return fork();
}

int execve(const char *path, char *const argv[], char *const envp[])
{
	char **env = shim_env_for_exec(envp);
	int r = REAL(execve)(path, argv, env);
	int e = errno;

	shim_env_free(env, envp);
	errno = e;
	return r;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	char **env = shim_env_for_exec(envp);
	int r = REAL(execvpe)(file, argv, env);
	int e = errno;

	shim_env_free(env, envp);
	errno = e;
	return r;
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
	char **env = shim_env_for_exec(envp);
	int r = REAL(fexecve)(fd, argv, env);
	int e = errno;

	shim_env_free(env, envp);
	errno = e;
	return r;
}

int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* Collect execl-style arguments into an array on the stack's behalf. */
#define ARGV_FROM_VA(first, ap, argv, envp_out)                                          \
	do {                                                                             \
		size_t n_ = 1, cap_ = 16;                                                \
		argv = malloc(cap_ * sizeof(char *));                                    \
		if (argv == NULL) {                                                      \
			errno = ENOMEM;                                                  \
			return -1;                                                       \
		}                                                                        \
		argv[0] = (char *)(first);                                               \
		for (char *a_; (a_ = va_arg(ap, char *)) != NULL;) {                     \
			if (n_ + 1 >= cap_) {                                            \
				char **g_ = realloc(argv, (cap_ *= 2) * sizeof(char *)); \
				if (g_ == NULL) {                                        \
					free(argv);                                      \
					errno = ENOMEM;                                  \
					return -1;                                       \
				}                                                        \
				argv = g_;                                               \
			}                                                                \
			argv[n_++] = a_;                                                 \
		}                                                                        \
		argv[n_] = NULL;                                                         \
		envp_out;                                                                \
	} while (0)

int execl(const char *path, const char *arg, ...)
{
	char **argv;
	va_list ap;
	int r;

	va_start(ap, arg);
	ARGV_FROM_VA(arg, ap, argv, (void)0);
	va_end(ap);
	r = execve(path, argv, environ);
	free(argv);
	return r;
}

int execlp(const char *file, const char *arg, ...)
{
	char **argv;
	va_list ap;
	int r;

	va_start(ap, arg);
	ARGV_FROM_VA(arg, ap, argv, (void)0);
	va_end(ap);
	r = execvpe(file, argv, environ);
	free(argv);
	return r;
}

int execle(const char *path, const char *arg, ...)
{
	char **argv, **envp = NULL;
	va_list ap;
	int r;

	va_start(ap, arg);
	ARGV_FROM_VA(arg, ap, argv, envp = va_arg(ap, char **));
	va_end(ap);
	r = execve(path, argv, envp);
	free(argv);
	return r;
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	char **env = shim_env_for_exec(envp);
	int r = REAL(posix_spawn)(pid, path, fa, attr, argv, env);

	shim_env_free(env, envp);
	return r;
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	char **env = shim_env_for_exec(envp);
	int r = REAL(posix_spawnp)(pid, file, fa, attr, argv, env);

	shim_env_free(env, envp);
	return r;
}

/* syscall(2): the numbers of the calls the shim wraps go through them. */
long syscall(long nr, ...)
{
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (shim_busy)
		return REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	switch (nr) {
	case SYS_pwrite64:
		return pwrite((int)a[0], (const void *)a[1], (size_t)a[2], (off_t)a[3]);
	case SYS_pwritev:
		return pwritev((int)a[0], (const struct iovec *)a[1], (int)a[2], (off_t)a[3]);
	case SYS_pwritev2:
		return pwritev2((int)a[0], (const struct iovec *)a[1], (int)a[2], (off_t)a[3],
				(int)a[5]);
	case SYS_write:
		return write((int)a[0], (const void *)a[1], (size_t)a[2]);
	case SYS_writev:
		return writev((int)a[0], (const struct iovec *)a[1], (int)a[2]);
	case SYS_fallocate:
		return fallocate((int)a[0], (int)a[1], (off_t)a[2], (off_t)a[3]);
	case SYS_sendfile:
		return sendfile((int)a[0], (int)a[1], (off_t *)a[2], (size_t)a[3]);
	case SYS_splice:
		return splice((int)a[0], (off_t *)a[1], (int)a[2], (off_t *)a[3], (size_t)a[4],
			      (unsigned)a[5]);
	case SYS_ftruncate:
		return ftruncate((int)a[0], (off_t)a[1]);
	case SYS_truncate:
		return truncate((const char *)a[0], (off_t)a[1]);
	case SYS_copy_file_range:
		return copy_file_range((int)a[0], (off_t *)a[1], (int)a[2], (off_t *)a[3],
				       (size_t)a[4], (unsigned)a[5]);
	case SYS_ioctl:
		return ioctl((int)a[0], (unsigned long)a[1], (void *)a[2]);
	case SYS_io_submit:
	case SYS_io_getevents:
	case SYS_io_pgetevents:
	case SYS_io_cancel:
	case SYS_io_destroy:
		return shim_sys_aio(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	case SYS_io_uring_setup:
		errno = ENOSYS; /* I8: programs fall back to calls the shim sees */
		return -1;
	case SYS_open:
	case SYS_openat:
	case SYS_openat2:
	case SYS_dup:
	case SYS_dup2:
	case SYS_dup3:
		return forget_ret((int)REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
	case SYS_close:
		shim_fd_forget((int)a[0]);
		break;
	case SYS_mmap:
		if (shared_writable((int)a[2], (int)a[3], (int)a[4]))
			return (long)mmap((void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], (int)a[4],
					  (off_t)a[5]);
		break;
	case SYS_munmap:
		return munmap((void *)a[0], (size_t)a[1]);
	}
	return REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
