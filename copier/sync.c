/*
 * volmig sync: run the copier in the foreground until the session is synced.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "engine.h"
#include "log.h"
#include "size.h"

static const char sync_help[] =
	"usage: volmig sync -s DIR [--threads N] [--rate BYTES_PER_S] [--direct]\n"
	"                   [--checkpoint-interval SECONDS] [--progress-interval SECONDS]\n"
	"                   [--follow]\n\n"
	"Copy every pair's source to its target, resuming whatever an earlier run\n"
	"left (after a kill, crash or reboot it goes on from its last checkpoint,\n"
	"never from the beginning).  Exits 0 once the session is synced.\n"
	"SIGINT, SIGTERM and SIGHUP (unless ignored, as under nohup) stop it\n"
	"after recording what it copied (exit 1).\n"
	"Progress goes to stderr: a live line on a terminal, a line every\n"
	"--progress-interval seconds otherwise.\n\n"
	"  -s, --state DIR                state directory (default $VOLMIG_STATE)\n"
	"  -j, --threads N                I/Os in flight, 1 to 64 (default 4)\n"
	"      --rate BYTES_PER_S         bandwidth limit, k/M/G suffixes (default none)\n"
	"      --direct                   O_DIRECT reads and writes (no page cache), up to\n"
	"                                 16 MiB per I/O\n"
	"      --checkpoint-interval SEC  flush and record progress this often\n"
	"                                 (default 1; fractions like 0.25 allowed)\n"
	"      --progress-interval SEC    seconds between progress lines when stderr\n"
	"                                 is not a terminal (default 5; 0: none)\n"
	"      --follow                   after synced, keep running until the\n"
	"                                 session is committed or aborted\n"
	"  -h, --help                     show this help\n\n"
	"A file source may grow up to the reserve given at setup; growing past it\n"
	"stops the migration (exit 1 with a message; volmig abort is left).  So\n"
	"does a source or target path that no longer names its volume (another\n"
	"file renamed over it, or removed) or a block device that changed size:\n"
	"the copier stops at its next checkpoint.\n\n"
	"Exit status: 0 synced, 1 failure (the message names the volume or the\n"
	"state at fault; progress made so far is kept), 2 usage error.\n";

int cmd_sync(int argc, char **argv)
{
	enum { OPT_RATE = 256, OPT_DIRECT, OPT_CKPT, OPT_FOLLOW, OPT_PROGRESS };
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 'j' },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "direct", no_argument, NULL, OPT_DIRECT },
		{ "checkpoint-interval", required_argument, NULL, OPT_CKPT },
		{ "progress-interval", required_argument, NULL, OPT_PROGRESS },
		{ "follow", no_argument, NULL, OPT_FOLLOW },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_opts eo = {
		.threads = 4, .checkpoint_us = 1000000, .progress_every = 5.0, .lock_fd = -1,
	};
	struct session_lock lock = { .fd = -1 };
	const char *dir_arg = NULL, *dir;
	struct state st;
	struct sess s;
	uint64_t v;
	int c, rc, holder, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:j:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir_arg = optarg;
			break;
		case 'j':
			if (uint_parse(optarg, &v) < 0 || v < 1 || v > 64) {
				log_err("--threads %s: want a number from 1 to 64", optarg);
				return EXIT_USAGE;
			}
			eo.threads = (unsigned)v;
			break;
		case OPT_RATE:
			if (size_parse(optarg, &eo.rate) < 0) {
				log_err("--rate %s: want bytes per second, like 50M", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_DIRECT:
			eo.direct = true;
			break;
		case OPT_CKPT:
			if (duration_parse(optarg, &eo.checkpoint_us) < 0 || eo.checkpoint_us == 0) {
				log_err("--checkpoint-interval %s: want seconds above 0, like 1 or 0.25",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_PROGRESS:
			if (cli_progress_interval(optarg, &v) < 0)
				return EXIT_USAGE;
			eo.progress_every = (double)v / 1e6;
			break;
		case OPT_FOLLOW:
			eo.follow = true;
			break;
		case 'h':
			cli_usage(true, sync_help);
			return EXIT_OK;
		default:
			cli_usage(false, sync_help);
			return EXIT_USAGE;
		}
	}
	dir = cli_state_dir(dir_arg);
	if (dir == NULL || optind != argc) {
		if (dir == NULL)
			log_err("no state directory: give -s DIR or set VOLMIG_STATE");
		else
			log_err("unexpected argument '%s'", argv[optind]);
		cli_usage(false, sync_help);
		return EXIT_USAGE;
	}

	rc = session_lock_take(&lock, dir, &holder);
	if (rc == -EBUSY) {
		log_err("another copier (pid %d) is running on session %s", holder, dir);
		return EXIT_FAIL;
	}
	if (rc == -ENOENT) {
		log_err("no session in %s (create one with volmig setup)", dir);
		return EXIT_FAIL;
	}
	if (rc < 0) {
		report_errno("cannot lock state directory", dir, rc);
		return EXIT_FAIL;
	}
	if (session_open(dir, &st, &s) < 0)
		goto out_lock;
	if (s.state == SESS_COMMITTED || s.state == SESS_ABORTED) {
		log_err("session %s is %s: there is nothing to copy", dir, sess_state_name(s.state));
		goto out;
	}
	/* a synced session is copied again only where the dirty log says */
	if (s.state == SESS_SYNCED || s.state == SESS_SWITCHED)
		log_info("session %s is already %s; draining the dirty log", dir,
			 sess_state_name(s.state));
	if (session_check_pairs(dir, &st, &s) < 0)
		goto out;
	eo.lock_fd = lock.fd;
	rc = engine_run(dir, &st, &s, &eo);
	if (rc == 0) {
		log_info("session %s is %s", dir, sess_state_name(s.state));
		ret = EXIT_OK;
	}
out:
	sess_release(&s);
	rc = state_close(&st);
	if (rc < 0 && ret == EXIT_OK) {
		/* committed transactions are in the log: the next start recovers */
		report_errno("cannot close the state store in", dir, rc);
		ret = EXIT_FAIL;
	}
out_lock:
	session_lock_release(&lock);
	return ret;
}
