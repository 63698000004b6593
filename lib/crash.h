/*
 * crash: named crash points, for the fault-injection build only.
 *
 * In a build with -DVOLMIG_CRASH_POINTS (make crash-build, build/crash/),
 * CRASH_POINT("name") counts the hits of that point in the process and, when
 * the environment holds VOLMIG_CRASH=name:N, kills the process with SIGKILL
 * at the Nth hit, after one line on stderr ("volmig: crash point NAME hit
 * N").  VOLMIG_CRASH=name:N:stop stops the process there instead (SIGSTOP;
 * SIGCONT goes on), so that a test can act in that window.  In every other
 * build it compiles to nothing.
 *
 * Points sit at each persistence step (see harness/crash-points.txt, which
 * lists them for the sweep driver), and at a few moments a test stops a
 * process at (not listed there).  libc only: the shim uses it.
 */
#ifndef VOLMIG_CRASH_H
#define VOLMIG_CRASH_H

#ifdef VOLMIG_CRASH_POINTS
void crash_point(const char *name);
#define CRASH_POINT(name) crash_point(name)
#else
#define CRASH_POINT(name) ((void)0)
#endif

#endif
