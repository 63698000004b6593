/*
 * volmig setup: check the pairs and record a new session.
 *
 * Nothing is written to a source or an existing target.  A target that does
 * not exist yet is created as a sparse file of the source's size, but only
 * after every pair passed its checks.  --reserve sets the room each file
 * source may grow into during the migration: the session tracks size +
 * reserve bytes, and a block-device target must hold that much.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "crash.h"
#include "io.h"
#include "log.h"
#include "region.h"
#include "size.h"

static const char setup_help[] =
	"usage: volmig setup -s DIR --source SRC --target TGT [--source SRC --target TGT]...\n"
	"                    [--region-size SIZE] [--reserve SIZE] [--durability sync|process]\n"
	"                    [--force]\n\n"
	"Record a new migration session in the state directory DIR (created if\n"
	"missing).  Each --source is paired with the --target that follows it;\n"
	"several pairs migrate together.  A target must be at least as large as its\n"
	"source and must not be the source itself (through any path or link).  A\n"
	"target file that does not exist is created, sparse, with the source's size.\n"
	"A file source may change size while it migrates (writes past its end,\n"
	"ftruncate); the target follows.  It may grow by at most --reserve bytes:\n"
	"growing further stops the migration (the application's writes go on).\n\n"
	"  -s, --state DIR          state directory (default $VOLMIG_STATE)\n"
	"      --source SRC         source volume: block device or regular file\n"
	"      --target TGT         target volume for the preceding --source\n"
	"      --region-size SIZE   tracking granularity, a power of two from 4k to 1G\n"
	"                           (k, M, G suffixes; default 1M)\n"
	"      --reserve SIZE       room for each file source to grow (k, M, G, T\n"
	"                           suffixes; default 0: no growth); a block-device\n"
	"                           target must hold the source's size plus it\n"
	"      --durability MODE    dirty-log flush: sync (each record) or process\n"
	"                           (group commit of a process's threads; default)\n"
	"      --force              replace a finished (committed or aborted) session\n"
	"  -h, --help               show this help\n";

/*
 * Absolute form of path, links resolved; for a path that does not exist yet,
 * its directory resolved and its last component kept.  0 or -errno.
 */
static int absolute_path(const char *path, char *out, size_t len)
{
	char dirbuf[PATH_MAX], resolved[PATH_MAX];
	const char *base, *slash;

	if (realpath(path, resolved) != NULL) {
		if (strlen(resolved) >= len)
			return -ENAMETOOLONG;
		strcpy(out, resolved);
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	slash = strrchr(path, '/');
	if (slash == NULL) {
		strcpy(dirbuf, ".");
		base = path;
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof(dirbuf))
			return -ENAMETOOLONG;
		memcpy(dirbuf, path, n);
		dirbuf[n ? n : 1] = '\0';
		if (n == 0)
			dirbuf[0] = '/';
		base = slash + 1;
	}
	if (*base == '\0' || realpath(dirbuf, resolved) == NULL)
		return -ENOENT;
	if (snprintf(out, len, "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, base) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Regions per pair at most: 4 bytes each in the control block (1 GiB). */
#define MAX_REGIONS (UINT64_C(1) << 28)

struct volume_check {
	struct sess_ident id;
	uint64_t size;
	uint64_t reserve; /* sources: room to grow */
	bool exists;
};

/* "given" or, when it resolves elsewhere, "given (resolved)": messages name
 * the volume as the user wrote it. */
static void name_as_given(char *buf, size_t len, const char *given, const char *resolved)
{
	if (strcmp(given, resolved) == 0)
		snprintf(buf, len, "%s", given);
	else
		snprintf(buf, len, "%s (%s)", given, resolved);
}

/* Stat and size a volume at path; name is how messages call it. */
static int probe(const char *role, const char *name, const char *path, struct volume_check *v)
{
	struct stat sb;
	int fd, rc;

	memset(v, 0, sizeof(*v));
	if (stat(path, &sb) < 0) {
		rc = -errno;
		if (rc == -ENOENT && strcmp(role, "target") == 0)
			return 0; /* created later */
		log_err("%s %s: %s", role, name, strerror(-rc));
		return rc;
	}
	if (sess_ident_from_stat(&sb, &v->id) < 0) {
		log_err("%s %s is neither a block device nor a regular file", role, name);
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_err("%s %s: %s", role, name, strerror(-rc));
		return rc;
	}
	rc = io_size(fd, &v->size);
	close(fd);
	if (rc < 0) {
		log_err("%s %s: cannot read its size: %s", role, name, strerror(-rc));
		return rc;
	}
	v->exists = true;
	return 0;
}

static int create_target(const char *path, uint64_t size)
{
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		unlink(path);
	return rc;
}

/* Remove the Berkeley DB files of a previous session in dir. */
static int remove_store(const char *dir)
{
	static const char *const fixed[] = { "progress.hint" };
	char path[4200];

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, fixed[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	return state_remove(dir);
}

struct setup_txn_arg {
	const struct sess *s;
};

static int setup_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct setup_txn_arg *a = arg;
	struct state_progress zero = { 0 };
	struct state_totals totals = { 0 };
	int rc;

	rc = state_sess_put(st, txn, a->s);
	for (uint32_t i = 0; rc == 0 && i < a->s->npairs; i++)
		rc = state_progress_put(st, txn, i, &zero);
	if (rc == 0)
		rc = state_totals_put(st, txn, &totals);
	return rc;
}

int cmd_setup(int argc, char **argv)
{
	enum { OPT_SOURCE = 256, OPT_TARGET, OPT_REGION, OPT_DURABILITY, OPT_FORCE, OPT_RESERVE };
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "region-size", required_argument, NULL, OPT_REGION },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		{ "reserve", required_argument, NULL, OPT_RESERVE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct volume_check src[SESS_MAX_PAIRS], tgt[SESS_MAX_PAIRS];
	static char abs_src[SESS_MAX_PAIRS][PATH_MAX], abs_tgt[SESS_MAX_PAIRS][PATH_MAX];
	const char *sources[SESS_MAX_PAIRS], *targets[SESS_MAX_PAIRS];
	static char src_name[SESS_MAX_PAIRS][PATH_MAX + 64], tgt_name[SESS_MAX_PAIRS][PATH_MAX + 64];
	unsigned nsrc = 0, ntgt = 0;
	const char *dir_arg = NULL, *dir;
	struct session_lock lock = { .fd = -1 };
	struct state st = { 0 };
	struct sess s = { 0 };
	uint64_t region_size = 1 << 20, reserve = 0;
	unsigned shift = 20;
	bool force = false, state_open_ok = false;
	uint32_t flags = SESS_DURABILITY_PROCESS;
	int c, rc, holder, ret = EXIT_FAIL;
	char rbuf[32], rsbuf[32];

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir_arg = optarg;
			break;
		case OPT_SOURCE:
			if (nsrc != ntgt) {
				log_err("--source %s follows a --source with no --target", optarg);
				return EXIT_USAGE;
			}
			if (nsrc == SESS_MAX_PAIRS) {
				log_err("at most %d pairs per session", SESS_MAX_PAIRS);
				return EXIT_USAGE;
			}
			sources[nsrc++] = optarg;
			break;
		case OPT_TARGET:
			if (ntgt + 1 != nsrc) {
				log_err("--target %s has no --source before it", optarg);
				return EXIT_USAGE;
			}
			targets[ntgt++] = optarg;
			break;
		case OPT_REGION:
			if (size_parse(optarg, &region_size) < 0 ||
			    !region_size_valid(region_size, &shift)) {
				log_err("--region-size %s: want a power of two from 4k to 1G", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_RESERVE:
			if (size_parse(optarg, &reserve) < 0) {
				log_err("--reserve %s: want a size such as 512M or 10G", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_DURABILITY:
			if (strcmp(optarg, "sync") == 0) {
				flags &= ~(uint32_t)SESS_DURABILITY_PROCESS;
			} else if (strcmp(optarg, "process") == 0) {
				flags |= SESS_DURABILITY_PROCESS;
			} else {
				log_err("--durability %s: want sync or process", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_FORCE:
			force = true;
			break;
		case 'h':
			cli_usage(true, setup_help);
			return EXIT_OK;
		default:
			cli_usage(false, setup_help);
			return EXIT_USAGE;
		}
	}
	dir = cli_state_dir(dir_arg);
	if (dir == NULL || optind != argc || nsrc == 0 || nsrc != ntgt) {
		if (dir == NULL)
			log_err("no state directory: give -s DIR or set VOLMIG_STATE");
		else if (optind != argc)
			log_err("unexpected argument '%s'", argv[optind]);
		else
			log_err("give at least one --source SRC --target TGT pair");
		cli_usage(false, setup_help);
		return EXIT_USAGE;
	}

	/* Check every pair before touching anything. */
	for (unsigned i = 0; i < nsrc; i++) {
		if ((rc = absolute_path(sources[i], abs_src[i], PATH_MAX)) < 0) {
			report_errno("source", sources[i], rc);
			return EXIT_FAIL;
		}
		if ((rc = absolute_path(targets[i], abs_tgt[i], PATH_MAX)) < 0) {
			report_errno("target", targets[i], rc);
			return EXIT_FAIL;
		}
		name_as_given(src_name[i], sizeof(src_name[i]), sources[i], abs_src[i]);
		name_as_given(tgt_name[i], sizeof(tgt_name[i]), targets[i], abs_tgt[i]);
		sources[i] = abs_src[i];
		targets[i] = abs_tgt[i];
		if (probe("source", src_name[i], sources[i], &src[i]) < 0 ||
		    probe("target", tgt_name[i], targets[i], &tgt[i]) < 0)
			return EXIT_FAIL;
		if (tgt[i].exists && sess_ident_equal(&src[i].id, &tgt[i].id)) {
			log_err("target %s is the same volume as source %s", tgt_name[i], src_name[i]);
			return EXIT_FAIL;
		}
		if (tgt[i].exists && tgt[i].size < src[i].size) {
			log_err("target %s is smaller than source %s: %llu bytes, need %llu",
				tgt_name[i], src_name[i], (unsigned long long)tgt[i].size,
				(unsigned long long)src[i].size);
			return EXIT_FAIL;
		}
		if (src[i].size == 0) {
			log_err("source %s is empty: nothing to migrate", src_name[i]);
			return EXIT_FAIL;
		}
		/* only a file grows; a block device keeps its size */
		src[i].reserve = src[i].id.kind == SESS_KIND_FILE ? reserve : 0;
		if (src[i].reserve > UINT64_MAX - src[i].size - region_size ||
		    region_count(src[i].size + src[i].reserve, shift) > MAX_REGIONS) {
			log_err("--reserve %s is too large for source %s with %s regions (at most "
				"%llu regions per pair)", size_format(reserve, rbuf, sizeof(rbuf)),
				src_name[i], size_format(region_size, rsbuf, sizeof(rsbuf)),
				(unsigned long long)MAX_REGIONS);
			return EXIT_FAIL;
		}
		if (tgt[i].exists && tgt[i].id.kind == SESS_KIND_BLOCK &&
		    tgt[i].size < src[i].size + src[i].reserve) {
			log_err("target %s is smaller than source %s with its reserve: %llu bytes, "
				"need %llu", tgt_name[i], src_name[i], (unsigned long long)tgt[i].size,
				(unsigned long long)(src[i].size + src[i].reserve));
			return EXIT_FAIL;
		}
		for (unsigned j = 0; j < i; j++) {
			const struct volume_check *mine[2] = { &src[i], &tgt[i] };
			const struct volume_check *theirs[2] = { &src[j], &tgt[j] };
			const char *mine_p[2] = { src_name[i], tgt_name[i] };

			for (int a = 0; a < 2; a++)
				for (int b = 0; b < 2; b++)
					if (mine[a]->exists && theirs[b]->exists &&
					    sess_ident_equal(&mine[a]->id, &theirs[b]->id)) {
						log_err("%s is used by two pairs", mine_p[a]);
						return EXIT_FAIL;
					}
			if (!tgt[i].exists && strcmp(targets[i], targets[j]) == 0) {
				log_err("%s is used by two pairs", tgt_name[i]);
				return EXIT_FAIL;
			}
		}
	}

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		report_errno("cannot create state directory", dir, -errno);
		return EXIT_FAIL;
	}
	rc = session_lock_take(&lock, dir, &holder);
	if (rc == -EBUSY) {
		log_err("session %s is in use by a copier (pid %d)", dir, holder);
		return EXIT_FAIL;
	}
	if (rc < 0) {
		report_errno("cannot lock state directory", dir, rc);
		return EXIT_FAIL;
	}
	rc = state_open(&st, dir, 0);
	if (rc == 0) {
		struct sess old = { 0 };

		state_open_ok = true;
		rc = session_read(&st, &old);
		if (rc == 0 && !(force && (old.state == SESS_COMMITTED || old.state == SESS_ABORTED))) {
			log_err("%s already holds a session in state %s%s", dir,
				sess_state_name(old.state),
				(old.state == SESS_COMMITTED || old.state == SESS_ABORTED)
					? " (use --force to replace it, or volmig cleanup)"
					: " (volmig abort it first)");
			sess_release(&old);
			goto out;
		}
		/* A store without a session record is what a setup cut off before
		 * its commit leaves: nothing was recorded, so it is replaced (the
		 * cut-off setup is rolled back). */
		if (rc < 0 && rc != -ENOENT && !force) {
			log_err("%s holds a state store that cannot be read; use --force to replace it",
				dir);
			goto out;
		}
		if (rc == -ENOENT)
			log_info("%s holds the store of a setup that did not finish; replacing it", dir);
		sess_release(&old);
		state_close(&st);
		state_open_ok = false;
		rc = remove_store(dir);
		if (rc < 0) {
			report_errno("cannot remove the old session in", dir, rc);
			goto out;
		}
	} else if (rc != -ENOENT) {
		if (!force) {
			log_err("%s holds a state store that cannot be opened; use --force to replace it",
				dir);
			goto out;
		}
		rc = remove_store(dir);
		if (rc < 0) {
			report_errno("cannot remove the old session in", dir, rc);
			goto out;
		}
	}

	for (unsigned i = 0; i < nsrc; i++) {
		if (!tgt[i].exists) {
			rc = create_target(targets[i], src[i].size);
			if (rc < 0) {
				report_errno("cannot create target", targets[i], rc);
				goto out;
			}
			log_info("created target %s (%llu bytes, sparse)", targets[i],
				 (unsigned long long)src[i].size);
			rc = probe("target", tgt_name[i], targets[i], &tgt[i]);
			if (rc < 0)
				goto out;
		}
	}

	s.version = SESS_VERSION;
	s.state = SESS_SETUP;
	s.region_shift = shift;
	s.flags = flags;
	s.created = (uint64_t)time(NULL);
	if (getrandom(&s.id, sizeof(s.id), 0) != sizeof(s.id))
		s.id = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	for (unsigned i = 0; i < nsrc; i++) {
		rc = sess_add_pair(&s, sources[i], targets[i]);
		if (rc < 0) {
			report_errno("cannot record pair", sources[i], rc);
			goto out;
		}
		s.pairs[i].size = src[i].size;
		s.pairs[i].reserve = src[i].reserve;
		s.pairs[i].target_size = tgt[i].size;
		s.pairs[i].source_id = src[i].id;
		s.pairs[i].target_id = tgt[i].id;
	}
	rc = state_open(&st, dir, STATE_CREATE);
	if (rc < 0) {
		report_errno("cannot create the state store in", dir, rc);
		goto out;
	}
	state_open_ok = true;
	{
		struct setup_txn_arg a = { .s = &s };
		CRASH_POINT("state.setup.before");
		rc = state_txn(&st, setup_txn, &a);
		if (rc == 0)
			CRASH_POINT("state.setup.after");
	}
	if (rc < 0) {
		report_errno("cannot record the session in", dir, rc);
		goto out;
	}
	rc = session_ctl_prepare(dir, &st, &s);
	if (rc < 0)
		log_warn("cannot build the control block in %s (%s): until volmig sync runs, "
			 "processes under the shim take a lock around each write", dir, strerror(-rc));
	{
		char rs[32];
		log_info("session %016llx set up in %s: %u pair%s, region size %s",
			 (unsigned long long)s.id, dir, s.npairs, s.npairs == 1 ? "" : "s",
			 size_format(region_size, rs, sizeof(rs)));
	}
	ret = EXIT_OK;
out:
	sess_release(&s);
	if (state_open_ok)
		state_close(&st);
	session_lock_release(&lock);
	return ret;
}
