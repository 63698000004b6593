/*
 * firstwrite: latency of writes that each land in a different region.
 *
 *   firstwrite [--threads T] [--count N] [--stride BYTES] [--bs BYTES]
 *              [--offset BYTES] [--lat FILE] [--hold] FILE
 *
 * T threads (default 1) each make N pwrite calls (default 256) of --bs bytes
 * (default 4096) to FILE, opened O_RDWR.  Write k of thread t lands at
 * offset + (t * N + k) * stride (default stride 1 MiB, the default region
 * size), so with the stride at least the session's region size every write
 * is the first one to its region: under the shim, on a synced session or a
 * region the copier has cleaned, each is a clean-to-dirty transition and
 * costs a dirty-log record made durable before the write is issued (I2).
 * Without the shim it is a plain pwrite: the baseline.
 *
 * The threads start together (a barrier); each pwrite is timed with
 * CLOCK_MONOTONIC.  One JSON object goes to stdout: writes, threads, the
 * wall time, and p50, p90, p99 and max latency in microseconds.  --lat FILE
 * also writes every latency (microseconds, one a line, sorted) for plots.
 *
 * --hold: after the writes, print "ready" on stdout, then wait for a signal
 * (SIGTERM, SIGINT) and exit 0.  The benchmarks use it to keep a process
 * attached to a session's control block, so that the block is not reset
 * between two programs run under the shim.
 *
 * An ordinary libc + pthread program, so it runs unmodified under
 * `volmig exec`.  Exit status: 0 success, 1 I/O error, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
	unsigned threads;
	unsigned count;
	uint64_t stride;
	uint64_t bs;
	uint64_t offset;
	const char *lat_path;
	const char *path;
	int hold;
};

struct thread_arg {
	const struct opts *o;
	unsigned id;
	int fd;
	pthread_barrier_t *barrier;
	double *lat_us;  /* this thread's count latencies */
	int rc;          /* 0 or -errno */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer(void *arg)
{
	struct thread_arg *a = arg;
	const struct opts *o = a->o;
	char *buf;

	buf = malloc(o->bs);
	if (buf == NULL) {
		a->rc = -ENOMEM;
		pthread_barrier_wait(a->barrier);
		return NULL;
	}
	memset(buf, 0x5a ^ (int)a->id, o->bs);
	pthread_barrier_wait(a->barrier);
	for (unsigned k = 0; k < o->count; k++) {
		uint64_t off = o->offset + ((uint64_t)a->id * o->count + k) * o->stride;
		double t0 = now_s();
		ssize_t n = pwrite(a->fd, buf, o->bs, (off_t)off);
		double t1 = now_s();

		if (n != (ssize_t)o->bs) {
			a->rc = n < 0 ? -errno : -EIO;
			break;
		}
		a->lat_us[k] = (t1 - t0) * 1e6;
	}
	free(buf);
	return NULL;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

/* The q-quantile of sorted v[0..n) (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	if (i >= n)
		i = n - 1;
	return v[i];
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = UINT64_C(1) << 10; end++; break;
	case 'm': case 'M': mult = UINT64_C(1) << 20; end++; break;
	case 'g': case 'G': mult = UINT64_C(1) << 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -EINVAL;
	*out = (uint64_t)v * mult;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: firstwrite [--threads T] [--count N] [--stride BYTES] [--bs BYTES]\n"
		   "                  [--offset BYTES] [--lat FILE] [--hold] FILE\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "stride", required_argument, NULL, 's' },
		{ "bs", required_argument, NULL, 'b' },
		{ "offset", required_argument, NULL, 'o' },
		{ "lat", required_argument, NULL, 'l' },
		{ "hold", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct opts){ .threads = 1, .count = 256, .stride = UINT64_C(1) << 20, .bs = 4096 };
	while ((c = getopt_long(argc, argv, "t:n:s:b:o:l:Hh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > 1024)
				return -EINVAL;
			o->threads = (unsigned)v;
			break;
		case 'n':
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > 10000000)
				return -EINVAL;
			o->count = (unsigned)v;
			break;
		case 's':
			if (parse_u64(optarg, &o->stride) < 0 || o->stride == 0)
				return -EINVAL;
			break;
		case 'b':
			if (parse_u64(optarg, &o->bs) < 0 || o->bs == 0 || o->bs > (UINT64_C(1) << 30))
				return -EINVAL;
			break;
		case 'o':
			if (parse_u64(optarg, &o->offset) < 0)
				return -EINVAL;
			break;
		case 'l':
			o->lat_path = optarg;
			break;
		case 'H':
			o->hold = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc - 1)
		return -EINVAL;
	o->path = argv[optind];
	return 0;
}

static int write_lat(const char *path, const double *v, size_t n)
{
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (f == NULL)
		return -errno;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%.3f\n", v[i]);
	if (fclose(f) != 0)
		rc = -errno;
	return rc;
}

/* Wait for SIGTERM or SIGINT. */
static void hold(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct thread_arg *args = NULL;
	pthread_t *tids = NULL;
	pthread_barrier_t barrier;
	double *lat = NULL, t0, t1;
	size_t total;
	unsigned started = 0;
	int fd = -1, rc = 0, status = 1;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	total = (size_t)o.threads * o.count;
	fd = open(o.path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "firstwrite: cannot open %s: %s\n", o.path, strerror(errno));
		return 1;
	}
	lat = calloc(total, sizeof(*lat));
	args = calloc(o.threads, sizeof(*args));
	tids = calloc(o.threads, sizeof(*tids));
	if (lat == NULL || args == NULL || tids == NULL) {
		fprintf(stderr, "firstwrite: out of memory\n");
		goto out;
	}
	pthread_barrier_init(&barrier, NULL, o.threads + 1);
	for (; started < o.threads; started++) {
		args[started] = (struct thread_arg){ .o = &o, .id = started, .fd = fd,
						     .barrier = &barrier,
						     .lat_us = lat + (size_t)started * o.count };
		if (pthread_create(&tids[started], NULL, writer, &args[started]) != 0) {
			fprintf(stderr, "firstwrite: cannot start threads\n");
			exit(1); /* the barrier would never open */
		}
	}
	pthread_barrier_wait(&barrier);
	t0 = now_s();
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		if (args[i].rc < 0 && rc == 0)
			rc = args[i].rc;
	}
	t1 = now_s();
	pthread_barrier_destroy(&barrier);
	if (rc < 0) {
		fprintf(stderr, "firstwrite: write to %s failed: %s\n", o.path, strerror(-rc));
		goto out;
	}
	qsort(lat, total, sizeof(*lat), cmp_double);
	printf("{\"writes\":%zu,\"threads\":%u,\"bs\":%" PRIu64 ",\"stride\":%" PRIu64
	       ",\"wall_s\":%.6f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f}\n",
	       total, o.threads, o.bs, o.stride, t1 - t0, quantile(lat, total, 0.50),
	       quantile(lat, total, 0.90), quantile(lat, total, 0.99), lat[total - 1]);
	fflush(stdout);
	if (o.lat_path != NULL && (rc = write_lat(o.lat_path, lat, total)) < 0) {
		fprintf(stderr, "firstwrite: cannot write %s: %s\n", o.lat_path, strerror(-rc));
		goto out;
	}
	if (o.hold)
		hold();
	status = 0;
out:
	free(tids);
	free(args);
	free(lat);
	close(fd);
	return status;
}
