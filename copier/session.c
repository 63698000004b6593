/*
 * session: opening an existing session, the copier lock, identity checks.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "size.h"

const char *cli_state_dir(const char *arg)
{
	const char *env;

	if (arg != NULL && *arg != '\0')
		return arg;
	env = getenv("VOLMIG_STATE");
	return (env != NULL && *env != '\0') ? env : NULL;
}

void cli_usage(bool to_stdout, const char *text)
{
	fputs(text, to_stdout ? stdout : stderr);
}

void report_errno(const char *what, const char *path, int neg_errno)
{
	log_err("%s %s: %s", what, path, strerror(-neg_errno));
}

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int lock_path(const char *dir, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/lock", dir) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

int session_lock_take(struct session_lock *l, const char *dir, int *holder)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[4200], pid[32];
	int fd, rc, n;

	*holder = 0;
	l->fd = -1;
	rc = lock_path(dir, path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		rc = -errno;
		if (rc == -EAGAIN || rc == -EACCES) {
			*holder = read_pid(fd);
			rc = -EBUSY;
		}
		close(fd);
		return rc;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	rc = ftruncate(fd, 0) < 0 ? -errno : io_pwrite_full(fd, pid, (size_t)n, 0);
	if (rc < 0) {
		close(fd); /* lets go of the lock: the caller must not go on */
		return rc;
	}
	l->fd = fd;
	return 0;
}

int session_lock_holder(const char *dir)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[4200];
	int fd, pid = 0;

	if (lock_path(dir, path, sizeof(path)) < 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		pid = read_pid(fd);
	close(fd);
	return pid;
}

bool session_lock_lost(int fd, const char *dir)
{
	char path[4200];
	struct stat held, named;

	if (fd < 0 || fstat(fd, &held) < 0 || lock_path(dir, path, sizeof(path)) < 0)
		return false;
	if (stat(path, &named) < 0)
		return errno == ENOENT || errno == ENOTDIR;
	return named.st_dev != held.st_dev || named.st_ino != held.st_ino;
}

void session_lock_release(struct session_lock *l)
{
	if (l->fd >= 0) {
		if (ftruncate(l->fd, 0) < 0) {
			/* the pid left in the file is harmless: only a held
			 * lock makes it count */
		}
		close(l->fd);
	}
	l->fd = -1;
}

struct sess_get_arg {
	struct sess *s;
};

static int sess_get_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct sess_get_arg *a = arg;

	sess_release(a->s);
	return state_sess_get(st, txn, a->s);
}

int session_read(struct state *st, struct sess *s)
{
	struct sess_get_arg a = { .s = s };

	memset(s, 0, sizeof(*s));
	return state_txn(st, sess_get_txn, &a);
}

int session_open(const char *dir, struct state *st, struct sess *s)
{
	struct sess_get_arg a = { .s = s };
	struct stat sb;
	int rc;

	memset(s, 0, sizeof(*s));
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		log_err("no session in %s: not a directory (create one with volmig setup)", dir);
		return -ENOENT;
	}
	rc = state_open(st, dir, 0);
	if (rc == -ENOENT) {
		log_err("no session in %s (create one with volmig setup)", dir);
		return rc;
	}
	if (rc == -EBADMSG) {
		log_err("state directory %s is corrupted: its Berkeley DB store cannot be opened", dir);
		return rc;
	}
	if (rc < 0) {
		report_errno("cannot open state directory", dir, rc);
		return rc;
	}
	rc = state_txn(st, sess_get_txn, &a);
	if (rc == -EPROTONOSUPPORT) {
		log_err("state directory %s has format version %u; this volmig reads version %u",
			dir, s->version, SESS_VERSION);
		goto fail;
	}
	if (rc == -ENOENT) {
		log_err("no session in %s (create one with volmig setup)", dir);
		goto fail;
	}
	if (rc == -EBADMSG) {
		log_err("state directory %s is corrupted: the session record fails its checks", dir);
		goto fail;
	}
	if (rc < 0) {
		report_errno("cannot read the session record in", dir, rc);
		goto fail;
	}
	rc = session_reconcile(dir, st, s);
	if (rc < 0)
		goto fail;
	return 0;

fail:
	sess_release(s);
	state_close(st);
	return rc;
}

/*
 * Check one volume against its identity from setup and its size: a block
 * device keeps its size; a file source may change size up to max_size (its
 * capacity; -EFBIG past it, *size set); a file target follows its source,
 * so any size is right for it.
 */
static int check_volume(const char *role, const char *path, const struct sess_ident *want,
			uint64_t want_size, uint64_t max_size, uint64_t *size)
{
	struct sess_ident id;
	struct stat sb;
	int fd, rc;

	if (stat(path, &sb) < 0) {
		rc = -errno;
		log_err("%s %s: %s", role, path, strerror(-rc));
		return rc;
	}
	if (sess_ident_from_stat(&sb, &id) < 0 || !sess_ident_equal(&id, want)) {
		log_err("%s %s is no longer the volume it was at setup (its device or inode changed)",
			role, path);
		return -ESTALE;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_err("%s %s: %s", role, path, strerror(-rc));
		return rc;
	}
	rc = io_size(fd, size);
	close(fd);
	if (rc < 0) {
		log_err("%s %s: %s", role, path, strerror(-rc));
		return rc;
	}
	if (want->kind == SESS_KIND_FILE)
		return *size > max_size ? -EFBIG : 0;
	if (*size != want_size) {
		log_err("%s %s changed size since setup: %llu bytes, was %llu", role, path,
			(unsigned long long)*size, (unsigned long long)want_size);
		return -ESTALE;
	}
	return 0;
}

void session_report_stop(const char *dir, const struct sess *s, uint32_t pair, uint64_t size)
{
	const struct sess_pair *p = &s->pairs[pair];

	log_err("source %s grew to %llu bytes, past the %llu bytes this session tracks "
		"(%llu at setup + %llu reserved): the migration is stopped and the source stays "
		"in use; run volmig abort -s %s, then set up again with a larger --reserve",
		p->source, (unsigned long long)size, (unsigned long long)sess_capacity(p),
		(unsigned long long)p->size, (unsigned long long)p->reserve, dir);
}

struct stop_arg {
	uint32_t pair;     /* 1 + pair to record; 0: only read */
	uint64_t size;
	struct state_control k;
};

static int stop_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct stop_arg *a = arg;
	int rc = state_control_get(st, txn, &a->k);

	if (rc < 0 || a->pair == 0 || a->k.stopped != 0)
		return rc; /* the first stop is the one kept */
	a->k.stopped = a->pair;
	a->k.stopped_size = a->size;
	return state_control_put(st, txn, &a->k);
}

int session_stop(const char *dir, struct state *st, const struct sess *s, uint32_t pair,
		 uint64_t size)
{
	struct stop_arg a = { .pair = pair + 1, .size = size };
	int rc = state_txn(st, stop_txn, &a);

	if (rc < 0) {
		report_errno("cannot record the stop of the migration in", dir, rc);
		return rc;
	}
	session_report_stop(dir, s, a.k.stopped - 1, a.k.stopped_size);
	return -EFBIG;
}

enum vol_change session_volume_changed(const char *path, const struct sess_ident *want,
				       uint64_t want_size, uint64_t *size)
{
	struct sess_ident id;
	struct stat sb;
	int fd, rc;

	if (stat(path, &sb) < 0)
		return errno == ENOENT || errno == ENOTDIR ? VOL_GONE : VOL_SAME;
	if (sess_ident_from_stat(&sb, &id) < 0 || !sess_ident_equal(&id, want))
		return VOL_GONE;
	if (want->kind != SESS_KIND_BLOCK)
		return VOL_SAME;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return VOL_SAME;
	rc = io_size(fd, size);
	close(fd);
	return rc == 0 && *size != want_size ? VOL_RESIZED : VOL_SAME;
}

int session_check_pairs(const char *dir, struct state *st, const struct sess *s)
{
	struct stop_arg a = { 0 };
	int rc = state_txn(st, stop_txn, &a);

	if (rc < 0) {
		report_errno("cannot read the session control record in", dir, rc);
		return rc;
	}
	if (a.k.stopped != 0 && a.k.stopped <= s->npairs) {
		session_report_stop(dir, s, a.k.stopped - 1, a.k.stopped_size);
		return -EFBIG;
	}
	for (uint32_t i = 0; i < s->npairs; i++) {
		const struct sess_pair *p = &s->pairs[i];
		uint64_t size;

		rc = check_volume("source", p->source, &p->source_id, p->size, sess_capacity(p),
				  &size);
		if (rc == -EFBIG)
			return session_stop(dir, st, s, i, size);
		if (rc < 0)
			return rc;
		rc = check_volume("target", p->target, &p->target_id, p->target_size, UINT64_MAX,
				  &size);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct set_state_arg {
	uint32_t state;
};

static int set_state_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct set_state_arg *a = arg;
	struct sess s;
	int rc;

	rc = state_sess_get(st, txn, &s);
	if (rc < 0)
		return rc;
	s.state = a->state;
	rc = state_sess_put(st, txn, &s);
	sess_release(&s);
	return rc;
}

int session_set_state(struct state *st, uint32_t new_state)
{
	struct set_state_arg a = { .state = new_state };

	return state_txn(st, set_state_txn, &a);
}

int cli_progress_interval(const char *arg, uint64_t *us)
{
	if (duration_parse(arg, us) < 0) {
		log_err("--progress-interval %s: want seconds, like 5", arg);
		return -EINVAL;
	}
	return 0;
}

const char *cli_parse_dir(int argc, char **argv, const char *help, bool *source,
			  uint64_t *progress_us, const char **arg, int *ret)
{
	enum { OPT_PROGRESS = 256 };
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "source", no_argument, NULL, 'S' },
		{ "progress-interval", required_argument, NULL, OPT_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = NULL, *dir;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir_arg = optarg;
			break;
		case 'S':
			if (source == NULL) {
				cli_usage(false, help);
				*ret = EXIT_USAGE;
				return NULL;
			}
			*source = true;
			break;
		case OPT_PROGRESS:
			if (progress_us == NULL) {
				cli_usage(false, help);
				*ret = EXIT_USAGE;
				return NULL;
			}
			if (cli_progress_interval(optarg, progress_us) < 0) {
				*ret = EXIT_USAGE;
				return NULL;
			}
			break;
		case 'h':
			cli_usage(true, help);
			*ret = EXIT_OK;
			return NULL;
		default:
			cli_usage(false, help);
			*ret = EXIT_USAGE;
			return NULL;
		}
	}
	dir = cli_state_dir(dir_arg);
	if (arg != NULL && optind < argc)
		*arg = argv[optind++];
	if (dir == NULL || optind != argc || (arg != NULL && *arg == NULL)) {
		log_err(dir == NULL ? "no state directory: give -s DIR or set VOLMIG_STATE"
		       : optind != argc ? "unexpected argument"
					: "missing argument");
		cli_usage(false, help);
		*ret = EXIT_USAGE;
		return NULL;
	}
	return dir;
}
