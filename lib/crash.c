/*
 * crash: see crash.h.
 */
#include "crash.h"

#ifdef VOLMIG_CRASH_POINTS

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char want[128];
static unsigned long want_n;
static bool want_stop; /* ":stop": SIGSTOP instead of SIGKILL */
static _Atomic unsigned long hits;

static void parse(void)
{
	const char *v = getenv("VOLMIG_CRASH");
	char buf[sizeof(want) + 32];
	size_t len;
	char *colon;

	if (v == NULL || (len = strlen(v)) >= sizeof(buf))
		return;
	memcpy(buf, v, len + 1);
	if (len > 5 && strcmp(buf + len - 5, ":stop") == 0) {
		want_stop = true;
		buf[len - 5] = '\0';
	}
	/* the count is after the last colon (a name may hold one) */
	if ((colon = strrchr(buf, ':')) == NULL || (size_t)(colon - buf) >= sizeof(want))
		return;
	memcpy(want, buf, (size_t)(colon - buf));
	want[colon - buf] = '\0';
	want_n = strtoul(colon + 1, NULL, 10);
}

void crash_point(const char *name)
{
	char line[200];
	int n;

	pthread_once(&once, parse);
	if (want_n == 0 || strcmp(name, want) != 0)
		return;
	if (atomic_fetch_add(&hits, 1) + 1 != want_n)
		return;
	n = snprintf(line, sizeof(line), "volmig: crash point %s hit %lu (pid %d)%s\n", name, want_n,
		     (int)getpid(), want_stop ? ", stopped" : "");
	/* raw system calls: in the shim, write() and kill() are ours to wrap */
	syscall(SYS_write, STDERR_FILENO, line, (size_t)n);
	if (want_stop) {
		/* to this thread: it stops (and the process with it) before it
		 * returns; SIGCONT goes on from here */
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSTOP);
		return;
	}
	syscall(SYS_kill, getpid(), SIGKILL);
	for (;;)
		pause();
}

#else
/* an empty translation unit is not ISO C */
typedef int crash_points_disabled;
#endif
