/*
 * The volmig command: what the subcommands share.
 *
 * Exit status everywhere: EXIT_OK 0 success, EXIT_FAIL 1 failure (the message
 * names what failed), EXIT_USAGE 2 bad command line.
 */
#ifndef VOLMIG_CLI_H
#define VOLMIG_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "sess.h"
#include "state.h"

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

/* One subcommand: its name, entry point and one-line summary. */
struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

int cmd_setup(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_switch(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_throttle(int argc, char **argv);
int cmd_abort(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);

/* The state directory: the -s/--state argument, else $VOLMIG_STATE, else
 * NULL. */
const char *cli_state_dir(const char *arg);

/*
 * The command line of the commands that take only -s DIR: with source
 * non-NULL, also --source (sets *source); with progress_us non-NULL, also
 * --progress-interval (sets *progress_us); with arg non-NULL, one
 * positional argument (into *arg).  Returns the state directory, or NULL
 * with *ret set (EXIT_OK after --help, EXIT_USAGE after a usage message).
 */
const char *cli_parse_dir(int argc, char **argv, const char *help, bool *source,
			  uint64_t *progress_us, const char **arg, int *ret);

/* --progress-interval's value into *us: 0, or -EINVAL (reported). */
int cli_progress_interval(const char *arg, uint64_t *us);

/* Print "usage: ..." help text to stdout (for --help) or stderr. */
void cli_usage(bool to_stdout, const char *text);

/*
 * The copier lock: STATE/lock, an open-file-description write lock held for
 * as long as the process runs, with the holder's pid written in the file.
 */
struct session_lock {
	int fd;
};

/*
 * Take the lock.  0; -EBUSY when another process holds it (*holder set to
 * its pid, or 0 when unknown); other -errno.
 */
int session_lock_take(struct session_lock *l, const char *dir, int *holder);
/* Pid of the process holding the lock, 0 when none. */
int session_lock_holder(const char *dir);
/* True when dir's lock file is no longer the file open as fd (removed, or
 * the directory set up again); any other failure of stat says nothing. */
bool session_lock_lost(int fd, const char *dir);
void session_lock_release(struct session_lock *l);

/*
 * Open the store of an existing session and read its record, printing a
 * message naming the directory for every failure (no session, another
 * format version, corrupted).  0 or -errno (already reported).
 */
int session_open(const char *dir, struct state *st, struct sess *s);

/*
 * Finish or roll back a transition a crash cut off (see copier/trans.c):
 * a pending commit whose process is gone is rolled back; a state recorded
 * but not announced is announced to running processes.  session_open runs
 * it.  0 or -errno (reported).
 */
int session_reconcile(const char *dir, struct state *st, const struct sess *s);

/* Tell running processes (the control block, if there is one) the state in
 * s and, with k, the copier controls. */
void session_announce(const char *dir, const struct sess *s, const struct state_control *k);

/* Read the session record of an open store (in its own transaction). */
int session_read(struct state *st, struct sess *s);

/*
 * Check that every pair's source and target are still the volumes recorded
 * at setup (identity; a block device's size) and that the migration is not
 * stopped: a file source past its capacity (sess_capacity) stops it for
 * good (recorded here).  Prints a message naming the volume at fault.
 * 0, -EFBIG when stopped, or -errno (already reported).
 */
int session_check_pairs(const char *dir, struct state *st, const struct sess *s);

/* How a volume's path compares with the volume recorded at setup. */
enum vol_change {
	VOL_SAME = 0,
	VOL_GONE,    /* removed, or another file or device there */
	VOL_RESIZED, /* a block device whose size changed */
};

/* Compare path with the volume recorded as want, of want_size bytes if a
 * block device (*size set to its size now when VOL_RESIZED).  A failure
 * other than a missing path says nothing (VOL_SAME). */
enum vol_change session_volume_changed(const char *path, const struct sess_ident *want,
				       uint64_t want_size, uint64_t *size);

/*
 * Record that the source of pair grew to size, past its capacity: the
 * migration is stopped (kept in the control record; only abort is left).
 * Prints the message and returns -EFBIG, or -errno when it could not be
 * recorded.  session_report_stop only prints it.
 */
int session_stop(const char *dir, struct state *st, const struct sess *s, uint32_t pair,
		 uint64_t size);
void session_report_stop(const char *dir, const struct sess *s, uint32_t pair, uint64_t size);

/* Record a new state durably (read-modify-write of the session record). */
int session_set_state(struct state *st, uint32_t new_state);

struct ctl;
/*
 * Open the session's control block (see copier/ctlopen.c), holding the
 * shared attach lock in *lock_fd until the caller closes it.  With copier,
 * also clear a dead copier's marks and repair dead writers' counts.
 * 0 or -errno (reported when specific).
 */
int session_ctl_open(const char *dir, struct state *st, const struct sess *s, bool copier,
		     struct ctl *c, int *lock_fd);

/*
 * Build the control block of a session just set up, when no process is
 * attached to the old one: every region DIRTY, marked pristine (ctl.h), the
 * header on disk.  Processes under the shim then track their writes from
 * the first, with no per-write lock until the first copier run.  0 (also
 * when processes are attached and nothing was built) or -errno.
 */
int session_ctl_prepare(const char *dir, struct state *st, const struct sess *s);

/* Render the message for a failed operation on path: "what PATH: strerror". */
void report_errno(const char *what, const char *path, int neg_errno);

/* Seconds since some fixed point (CLOCK_MONOTONIC). */
double mono_now(void);

#endif
