/*
 * iowatch: run a program and watch it: when it first modifies a file, how
 * many bytes it reads and writes over time, its peak memory.
 *
 *   iowatch [--modify FILE] [--samples FILE] [--interval SEC] [--pidfile FILE]
 *           [--out FILE] -- PROGRAM [ARGS]...
 *
 * The clock starts just before the fork that runs PROGRAM.
 *   --modify FILE    an inotify watch (IN_MODIFY) is placed on FILE before
 *                    the fork; the first event after it is PROGRAM's first
 *                    write, hole punch or other change of FILE's data.  The
 *                    benchmarks point it at a target: the time from start to
 *                    the first byte copied.
 *   --samples FILE   every --interval seconds (default 0.1) one line
 *                    "UNIX_TIME RCHAR WCHAR" from /proc/PID/io (bytes the
 *                    process read and wrote through system calls so far).
 *   --pidfile FILE   PROGRAM's pid, written (atomically, by rename) as soon
 *                    as it is forked, so a caller can kill it by pid.
 *   --out FILE       one JSON object when PROGRAM has ended (default
 *                    stdout): start (unix time), first_modify_ms (null if
 *                    none), exit_ms, exit_code or signal, maxrss_kib (peak
 *                    resident set, from wait4).
 *
 * SIGTERM and SIGINT are passed on to PROGRAM.  Exit status: PROGRAM's own,
 * 128 + N when it was killed by signal N, 125 when it could not be started,
 * 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct opts {
	const char *modify;
	const char *samples;
	const char *pidfile;
	const char *out;
	double interval;
	char **argv;
};

static volatile sig_atomic_t child_pid;

static void pass_on(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double unix_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: iowatch [--modify FILE] [--samples FILE] [--interval SEC]\n"
		   "               [--pidfile FILE] [--out FILE] -- PROGRAM [ARGS]...\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "modify", required_argument, NULL, 'm' },
		{ "samples", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	*o = (struct opts){ .interval = 0.1 };
	while ((c = getopt_long(argc, argv, "+m:s:i:p:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o->modify = optarg;
			break;
		case 's':
			o->samples = optarg;
			break;
		case 'i':
			o->interval = strtod(optarg, &end);
			if (*end != '\0' || !(o->interval >= 0.001 && o->interval <= 60))
				return -EINVAL;
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind >= argc)
		return -EINVAL;
	o->argv = argv + optind;
	return 0;
}

static int write_pidfile(const char *path, pid_t pid)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "%d\n", (int)pid);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -errno;
	return 0;
}

/* Append one sample of /proc/PID/io to f; a vanished process is no error. */
static void sample(FILE *f, pid_t pid)
{
	char path[64], line[128];
	unsigned long long rchar = 0, wchar = 0, v;
	FILE *io;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	io = fopen(path, "r");
	if (io == NULL)
		return;
	while (fgets(line, sizeof(line), io) != NULL) {
		if (sscanf(line, "rchar: %llu", &v) == 1)
			rchar = v;
		else if (sscanf(line, "wchar: %llu", &v) == 1)
			wchar = v;
	}
	fclose(io);
	fprintf(f, "%.6f %llu %llu\n", unix_s(), rchar, wchar);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sigaction sa = { .sa_handler = pass_on };
	struct rusage ru;
	FILE *samples = NULL, *out = stdout;
	double t0, start, first_ms = -1, exit_ms, next_sample;
	int ifd = -1, wd = -1, status = 0, code;
	pid_t pid;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (o.modify != NULL) {
		ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (ifd < 0 || (wd = inotify_add_watch(ifd, o.modify, IN_MODIFY)) < 0) {
			fprintf(stderr, "iowatch: cannot watch %s: %s\n", o.modify, strerror(errno));
			return 125;
		}
	}
	if (o.samples != NULL && (samples = fopen(o.samples, "w")) == NULL) {
		fprintf(stderr, "iowatch: cannot write %s: %s\n", o.samples, strerror(errno));
		return 125;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	start = unix_s();
	t0 = mono_s();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "iowatch: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		if (ifd >= 0)
			close(ifd);
		execvp(o.argv[0], o.argv);
		fprintf(stderr, "iowatch: cannot run %s: %s\n", o.argv[0], strerror(errno));
		_exit(125);
	}
	child_pid = pid;
	if (o.pidfile != NULL && write_pidfile(o.pidfile, pid) < 0)
		fprintf(stderr, "iowatch: cannot write %s: %s\n", o.pidfile, strerror(errno));
	next_sample = t0;
	for (;;) {
		struct pollfd pfd = { .fd = ifd, .events = POLLIN };
		double now = mono_s();
		siginfo_t info;
		int timeout_ms, w;

		if (samples != NULL && now >= next_sample) {
			sample(samples, pid);
			next_sample += o.interval;
			if (next_sample < now)
				next_sample = now + o.interval;
		}
		/* see the end without reaping, so the last sample holds the
		 * final counters */
		info.si_pid = 0;
		w = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
		if (w == 0 && info.si_pid == pid) {
			if (samples != NULL)
				sample(samples, pid);
			while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
				;
			break;
		}
		if (w < 0 && errno != EINTR) {
			fprintf(stderr, "iowatch: wait: %s\n", strerror(errno));
			return 125;
		}
		/* short polls: a process's end is noticed within 10 ms */
		timeout_ms = 10;
		if (samples != NULL && (next_sample - now) * 1000 < timeout_ms)
			timeout_ms = (int)((next_sample - now) * 1000) + 1;
		if (poll(&pfd, wd >= 0 ? 1 : 0, timeout_ms) > 0 && (pfd.revents & POLLIN)) {
			char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

			if (read(ifd, buf, sizeof(buf)) > 0 && first_ms < 0) {
				first_ms = (mono_s() - t0) * 1000;
				inotify_rm_watch(ifd, wd);
				wd = -1;
			}
		}
	}
	exit_ms = (mono_s() - t0) * 1000;
	if (samples != NULL)
		fclose(samples);
	if (ifd >= 0)
		close(ifd);
	if (o.out != NULL && (out = fopen(o.out, "w")) == NULL) {
		fprintf(stderr, "iowatch: cannot write %s: %s\n", o.out, strerror(errno));
		out = stdout;
	}
	fprintf(out, "{\"pid\":%d,\"start\":%.6f,", (int)pid, start);
	if (first_ms >= 0)
		fprintf(out, "\"first_modify_ms\":%.3f,", first_ms);
	else
		fprintf(out, "\"first_modify_ms\":null,");
	if (WIFSIGNALED(status)) {
		code = 128 + WTERMSIG(status);
		fprintf(out, "\"exit_ms\":%.3f,\"signal\":%d,", exit_ms, WTERMSIG(status));
	} else {
		code = WEXITSTATUS(status);
		fprintf(out, "\"exit_ms\":%.3f,\"exit_code\":%d,", exit_ms, code);
	}
	fprintf(out, "\"maxrss_kib\":%ld}\n", ru.ru_maxrss);
	if (out != stdout)
		fclose(out);
	return code;
}
