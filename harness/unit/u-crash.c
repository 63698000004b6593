/*
 * u-crash: lib/crash.  crash.c compiles to nothing outside the crash-point
 * build, so this test compiles it in with VOLMIG_CRASH_POINTS itself.  Each
 * case runs in a child process (a crash point kills its process).
 */
#define VOLMIG_CRASH_POINTS 1
#include "../../lib/crash.c"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

/* Hit the point `name` `times` times in a child with VOLMIG_CRASH=env;
 * returns the child's wait status. */
static int run(const char *env, const char *name, int times)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		if (env != NULL)
			setenv("VOLMIG_CRASH", env, 1);
		else
			unsetenv("VOLMIG_CRASH");
		for (int i = 0; i < times; i++)
			crash_point(name);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return status;
}

static bool killed(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* p.one:2:stop: the second hit stops the process; SIGCONT goes on to the
 * third hit and a normal exit. */
static void stop_case(void)
{
	pid_t pid = fork();
	int st1 = 0, st2 = 0;

	if (pid == 0) {
		setenv("VOLMIG_CRASH", "p.one:2:stop", 1);
		for (int i = 0; i < 3; i++)
			crash_point("p.one");
		_exit(7);
	}
	waitpid(pid, &st1, WUNTRACED);
	if (WIFSTOPPED(st1))
		kill(pid, SIGCONT);
	waitpid(pid, &st2, 0);
	ok(WIFSTOPPED(st1) && WSTOPSIG(st1) == SIGSTOP && WIFEXITED(st2) && WEXITSTATUS(st2) == 7,
	   "p.one:2:stop stops the process at the second hit; SIGCONT goes on to its exit");
}

int main(void)
{
	int st;

	st = run(NULL, "p.one", 5);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "without VOLMIG_CRASH no point kills");
	st = run("p.one:1", "p.one", 1);
	ok(killed(st), "VOLMIG_CRASH=p.one:1 kills at the first hit");
	st = run("p.one:3", "p.one", 2);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "p.one:3 survives two hits");
	st = run("p.one:3", "p.one", 3);
	ok(killed(st), "p.one:3 kills at the third hit");
	st = run("p.one:1", "p.other", 4);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another point's name does not kill");
	st = run("p.one", "p.one", 2);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a setting without :N kills nothing");
	st = run("a:b:2", "a:b", 2);
	ok(killed(st), "a point name with a colon: the count is after the last one");
	st = run("p.one:0", "p.one", 3);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "N = 0 kills nothing");
	stop_case();
	return tap_done();
}
