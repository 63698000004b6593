/*
 * volmig abort and volmig cleanup: end a session.
 *
 * abort records the aborted state durably; a running copier sees it at its
 * next checkpoint and stops.  The source stays the volume in use, the target
 * is left as it is.  cleanup removes a finished session's state directory.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "crash.h"
#include "ctl.h"
#include "log.h"

static const char abort_help[] =
	"usage: volmig abort -s DIR\n\n"
	"Give up the migration: the session becomes aborted, a running copier stops\n"
	"at its next checkpoint, and the source stays the volume in use.  The\n"
	"target is left as it is.  A committed session cannot be aborted.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"  -h, --help        show this help\n";

static const char cleanup_help[] =
	"usage: volmig cleanup -s DIR\n\n"
	"Remove the state directory of a committed or aborted session (its\n"
	"Berkeley DB store, dirty log and control block).  Sources and targets\n"
	"are not touched.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"  -h, --help        show this help\n";


int cmd_abort(int argc, char **argv)
{
	const char *dir;
	struct state st;
	struct sess s;
	int ret = EXIT_FAIL, rc;

	dir = cli_parse_dir(argc, argv, abort_help, NULL, NULL, NULL, &ret);
	if (dir == NULL)
		return ret;
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	if (s.state == SESS_COMMITTED) {
		log_err("session %s is committed: it cannot be aborted", dir);
		goto out;
	}
	if (s.state == SESS_ABORTED) {
		log_info("session %s is already aborted", dir);
		ret = EXIT_OK;
		goto out;
	}
	CRASH_POINT("state.aborted.before");
	rc = session_set_state(&st, SESS_ABORTED);
	if (rc == 0)
		CRASH_POINT("state.aborted.after");
	if (rc < 0) {
		report_errno("cannot record the aborted state in", dir, rc);
		goto out;
	}
	{
		uint32_t was = s.state;

		s.state = SESS_ABORTED;
		session_announce(dir, &s, NULL);
		s.state = was; /* for the message below */
	}
	log_info("session %s aborted (it was %s); the source stays in use", dir,
		 sess_state_name(s.state));
	ret = EXIT_OK;
out:
	sess_release(&s);
	state_close(&st);
	return ret;
}

/* Files of a session besides the store and the log directory. */
static const char *const session_files[] = { "progress.hint", "ctl.lock", "lock" };

/* Remove STATE/log and the segments in it. */
static int remove_log_dir(const char *dir)
{
	char path[4200];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/log", dir);
	d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		char seg[4500];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(seg, sizeof(seg), "%s/%s", path, de->d_name);
		if (unlink(seg) < 0 && errno != ENOENT)
			rc = -errno;
	}
	closedir(d);
	if (rc == 0 && rmdir(path) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

int cmd_cleanup(int argc, char **argv)
{
	struct session_lock lock = { .fd = -1 };
	const char *dir;
	char path[4200];
	struct state st;
	struct sess s;
	int ret = EXIT_FAIL, rc, holder;
	bool final;

	dir = cli_parse_dir(argc, argv, cleanup_help, NULL, NULL, NULL, &ret);
	if (dir == NULL)
		return ret;
	rc = session_lock_take(&lock, dir, &holder);
	if (rc == -EBUSY) {
		log_err("session %s is in use by a copier (pid %d)", dir, holder);
		return EXIT_FAIL;
	}
	if (rc < 0) {
		log_err("no session in %s", dir);
		return EXIT_FAIL;
	}
	if (session_open(dir, &st, &s) < 0)
		goto out_lock;
	final = s.state == SESS_COMMITTED || s.state == SESS_ABORTED;
	if (!final)
		log_err("session %s is %s: commit or abort it before cleanup", dir,
			sess_state_name(s.state));
	sess_release(&s);
	state_close(&st);
	if (!final)
		goto out_lock;
	if (ctl_path(dir, path, sizeof(path)) == 0)
		unlink(path);
	rc = state_remove(dir);
	if (rc < 0) {
		report_errno("cannot remove the state store in", dir, rc);
		goto out_lock;
	}
	rc = remove_log_dir(dir);
	if (rc < 0) {
		report_errno("cannot remove the dirty log in", dir, rc);
		goto out_lock;
	}
	for (size_t i = 0; i < sizeof(session_files) / sizeof(session_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, session_files[i]);
		unlink(path);
	}
	session_lock_release(&lock);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_info("removed session files; %s itself is kept: %s", dir, strerror(errno));
	else
		log_info("removed session %s", dir);
	return EXIT_OK;
out_lock:
	session_lock_release(&lock);
	return ret;
}
