/*
 * noop: the floor of any LD_PRELOAD shim, for the shim benchmark.
 * It interposes the calls fio's cases make (pread, pwrite and their 64-bit
 * forms; libaio's io_submit and io_getevents) and passes each on to the
 * next definition, doing nothing else: what is left of the shim's overhead
 * above this one's is the shim's own work.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define NEXT(fn)                                                                 \
	({                                                                       \
		static __typeof__(fn) *next_;                                    \
		if (__builtin_expect(next_ == NULL, 0))                          \
			next_ = (__typeof__(fn) *)dlsym(RTLD_NEXT, #fn);         \
		next_;                                                           \
	})

ssize_t pread(int fd, void *buf, size_t n, off_t off);
ssize_t pread64(int fd, void *buf, size_t n, off_t off);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off);
int io_submit(void *ctx, long nr, void **ios);
int io_getevents(void *ctx, long min_nr, long nr, void *ev, struct timespec *timeout);

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return NEXT(pread)(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return NEXT(pread64)(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return NEXT(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return NEXT(pwrite64)(fd, buf, n, off);
}

int io_submit(void *ctx, long nr, void **ios)
{
	return NEXT(io_submit)(ctx, nr, ios);
}

int io_getevents(void *ctx, long min_nr, long nr, void *ev, struct timespec *timeout)
{
	return NEXT(io_getevents)(ctx, min_nr, nr, ev, timeout);
}
