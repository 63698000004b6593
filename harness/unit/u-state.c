/*
 * u-state: the Berkeley DB store against lib/state.h, in fresh scratch
 * directories under /var/tmp: open/create, every record kind, the dirty set
 * (pair isolation, key order, regions beyond the map), transactions that
 * fail and are rolled back or deadlock and are re-run, durability across
 * close and reopen, a kill while the log runs over several files, removal,
 * a garbage database file, and state_errno.
 */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scratch.h"
#include "tap.h"

static char scratch[] = "/var/tmp/u-state.XXXXXX";

/* A new empty directory under the scratch directory. */
static int fresh_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", scratch, name);
	return mkdir(buf, 0700);
}

static int closed(const struct state *st)
{
	return st->env == NULL && st->meta == NULL && st->dirty == NULL && st->ingest == NULL;
}

static int make_sess(struct sess *s)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->version = SESS_VERSION;
	s->state = SESS_COPYING;
	s->region_shift = 16;
	s->id = UINT64_C(0xabcdef0123456789);
	s->created = 1700000123;
	rc = sess_add_pair(s, "/dev/vg/src0", "/dev/vg/dst0");
	if (rc == 0)
		rc = sess_add_pair(s, "/srv/a.img", "/srv/b.img");
	if (rc == 0) {
		s->pairs[0].size = UINT64_C(1) << 34;
		s->pairs[0].target_size = UINT64_C(1) << 35;
		s->pairs[0].source_id = (struct sess_ident){ SESS_KIND_BLOCK, 0, 0, 0xfd01 };
		s->pairs[0].target_id = (struct sess_ident){ SESS_KIND_BLOCK, 0, 0, 0xfd02 };
		s->pairs[1].size = 12345;
		s->pairs[1].target_size = 12345;
		s->pairs[1].reserve = 4096;
		s->pairs[1].source_id = (struct sess_ident){ SESS_KIND_FILE, 0x803, 11, 0 };
		s->pairs[1].target_id = (struct sess_ident){ SESS_KIND_FILE, 0x803, 12, 0 };
	}
	return rc;
}

static int sess_same(const struct sess *a, const struct sess *b)
{
	if (a->version != b->version || a->state != b->state || a->region_shift != b->region_shift ||
	    a->flags != b->flags || a->id != b->id || a->created != b->created ||
	    a->npairs != b->npairs)
		return 0;
	for (uint32_t i = 0; i < a->npairs; i++) {
		const struct sess_pair *p = &a->pairs[i], *q = &b->pairs[i];

		if (strcmp(p->source, q->source) || strcmp(p->target, q->target) ||
		    p->size != q->size || p->target_size != q->target_size ||
		    p->reserve != q->reserve || !sess_ident_equal(&p->source_id, &q->source_id) ||
		    !sess_ident_equal(&p->target_id, &q->target_id))
			return 0;
	}
	return 1;
}

static void test_open_missing(const char *dir)
{
	struct state st;
	int rc;

	memset(&st, 0xff, sizeof(st));
	rc = state_open(&st, dir, 0);
	ok(rc == -ENOENT && closed(&st), "state_open without STATE_CREATE on an empty dir: -ENOENT, closed (rc %d)",
	   rc);
	rc = state_open(&st, "/var/tmp/u-state-no-such-dir-at-all", 0);
	ok(rc == -ENOENT, "state_open of a missing dir: -ENOENT (rc %d)", rc);
}

/* Regions of the dirty-set checks: pair -> regions. */
static const struct {
	uint32_t pair;
	uint64_t region;
} dirty_set[] = {
	{ 0, 0 }, { 0, 1 }, { 0, 255 }, { 0, 256 }, { 0, 299 }, { 0, 300 },
	{ 0, UINT64_C(1) << 32 }, { 0, UINT64_MAX },
	{ 1, 0 }, { 1, 7 },
	{ 256, 3 },
	{ 0x01000000, 9 },
	{ UINT32_MAX, 0 }, { UINT32_MAX, UINT64_MAX },
};

static void test_records(struct state *st)
{
	struct sess s, g;
	struct state_progress pr, pg;
	struct state_totals t;
	struct region_map m;
	uint64_t n, beyond, off;
	int rc, bad = 0;

	/* session */
	memset(&g, 0, sizeof(g));
	rc = state_sess_get(st, NULL, &g);
	ok(rc == -ENOENT && g.npairs == 0, "sess_get before any put: -ENOENT (rc %d)", rc);
	if (make_sess(&s) < 0) {
		ok(0, "build a session");
		return;
	}
	rc = state_sess_put(st, NULL, &s);
	ok(rc == 0, "sess_put (rc %d)", rc);
	memset(&g, 0, sizeof(g));
	rc = state_sess_get(st, NULL, &g);
	ok(rc == 0 && sess_same(&s, &g), "sess_get returns what was put (rc %d)", rc);
	sess_release(&g);
	s.state = SESS_SYNCED;
	rc = state_sess_put(st, NULL, &s);
	memset(&g, 0, sizeof(g));
	rc = rc ? rc : state_sess_get(st, NULL, &g);
	ok(rc == 0 && g.state == SESS_SYNCED, "a second put replaces the record (rc %d)", rc);
	sess_release(&g);
	sess_release(&s);

	/* progress */
	memset(&pg, 0xee, sizeof(pg));
	rc = state_progress_get(st, NULL, 3, &pg);
	ok(rc == 0 && pg.cursor == 0 && pg.bytes_copied == 0 && pg.bytes_recopied == 0 && pg.hwm == 0,
	   "progress of a pair never written: all zero (rc %d)", rc);
	pr = (struct state_progress){ 17, UINT64_C(1) << 40, 12345, UINT64_MAX };
	rc = state_progress_put(st, NULL, 1, &pr);
	ok(rc == 0, "progress_put pair 1 (rc %d)", rc);
	pr = (struct state_progress){ 99, 98, 97, 96 };
	rc = state_progress_put(st, NULL, 10, &pr);
	ok(rc == 0, "progress_put pair 10 (rc %d)", rc);
	rc = state_progress_get(st, NULL, 1, &pg);
	ok(rc == 0 && pg.cursor == 17 && pg.bytes_copied == UINT64_C(1) << 40 &&
		   pg.bytes_recopied == 12345 && pg.hwm == UINT64_MAX,
	   "progress_get pair 1: every field back (rc %d)", rc);
	rc = state_progress_get(st, NULL, 10, &pg);
	ok(rc == 0 && pg.cursor == 99 && pg.bytes_copied == 98 && pg.bytes_recopied == 97 && pg.hwm == 96,
	   "progress_get pair 10: its own values (rc %d)", rc);
	rc = state_progress_get(st, NULL, 0, &pg);
	ok(rc == 0 && pg.cursor == 0 && pg.hwm == 0, "progress of pair 0 still zero (rc %d)", rc);

	/* totals */
	t.resumes = 41;
	rc = state_totals_put(st, NULL, &t);
	t.resumes = 0;
	rc = rc ? rc : state_totals_get(st, NULL, &t);
	ok(rc == 0 && t.resumes == 41, "totals put/get (rc %d, resumes %" PRIu64 ")", rc, t.resumes);

	/* dirty set */
	for (size_t i = 0; i < sizeof(dirty_set) / sizeof(dirty_set[0]); i++)
		bad += state_dirty_add(st, NULL, dirty_set[i].pair, dirty_set[i].region) != 0;
	ok(bad == 0, "dirty_add of %zu (pair, region) keys", sizeof(dirty_set) / sizeof(dirty_set[0]));
	rc = state_dirty_add(st, NULL, 0, 255);
	ok(rc == 0, "dirty_add of a present key: 0 (idempotent) (rc %d)", rc);
	rc = state_dirty_count(st, NULL, 0, &n);
	ok(rc == 0 && n == 8, "dirty_count pair 0: 8, from region 0 to UINT64_MAX (rc %d, n %" PRIu64 ")", rc, n);
	rc = state_dirty_count(st, NULL, 1, &n);
	ok(rc == 0 && n == 2, "dirty_count pair 1: 2 (n %" PRIu64 ")", n);
	rc = state_dirty_count(st, NULL, 256, &n);
	ok(rc == 0 && n == 1, "dirty_count pair 256: 1 (n %" PRIu64 ")", n);
	rc = state_dirty_count(st, NULL, 0x01000000, &n);
	ok(rc == 0 && n == 1, "dirty_count pair 2^24: 1 (n %" PRIu64 ")", n);
	rc = state_dirty_count(st, NULL, UINT32_MAX, &n);
	ok(rc == 0 && n == 2, "dirty_count pair UINT32_MAX: 2 (n %" PRIu64 ")", n);
	rc = state_dirty_count(st, NULL, 2, &n);
	ok(rc == 0 && n == 0, "dirty_count of a pair with none: 0 (n %" PRIu64 ")", n);

	if (region_map_init(&m, 300) == 0) {
		beyond = 12345;
		rc = state_dirty_load(st, NULL, 0, &m, &beyond);
		ok(rc == 0 && m.count == 5 && region_map_test(&m, 0) && region_map_test(&m, 1) &&
			   region_map_test(&m, 255) && region_map_test(&m, 256) && region_map_test(&m, 299),
		   "dirty_load pair 0 into 300 bits: 0, 1, 255, 256, 299 (rc %d, count %" PRIu64 ")", rc,
		   m.count);
		ok(beyond == 3, "  3 regions beyond the map (300, 2^32, UINT64_MAX) (got %" PRIu64 ")", beyond);
		region_map_release(&m);
	}
	if (region_map_init(&m, 8) == 0) {
		rc = state_dirty_load(st, NULL, 1, &m, NULL);
		ok(rc == 0 && m.count == 2 && region_map_test(&m, 0) && region_map_test(&m, 7),
		   "dirty_load pair 1 (beyond NULL): 0 and 7 only (rc %d, count %" PRIu64 ")", rc, m.count);
		region_map_release(&m);
	}
	if (region_map_init(&m, 10) == 0) {
		beyond = 99;
		rc = state_dirty_load(st, NULL, 2, &m, &beyond);
		ok(rc == 0 && m.count == 0 && beyond == 0, "dirty_load of a pair with none: nothing (rc %d)", rc);
		region_map_release(&m);
	}
	rc = state_dirty_del(st, NULL, 0, 255);
	ok(rc == 0, "dirty_del (rc %d)", rc);
	rc = state_dirty_del(st, NULL, 0, 255);
	ok(rc == 0, "dirty_del of an absent key: 0 (idempotent) (rc %d)", rc);
	rc = state_dirty_count(st, NULL, 0, &n);
	ok(rc == 0 && n == 7, "dirty_count pair 0 after del: 7 (n %" PRIu64 ")", n);
	rc = state_dirty_count(st, NULL, 1, &n);
	ok(rc == 0 && n == 2, "  pair 1 unaffected: 2 (n %" PRIu64 ")", n);

	/* ingest offsets */
	rc = state_ingest_get(st, NULL, "seg-000001", &off);
	ok(rc == -ENOENT, "ingest_get of an unknown segment: -ENOENT (rc %d)", rc);
	rc = state_ingest_put(st, NULL, "seg-000001", 4096);
	rc = rc ? rc : state_ingest_put(st, NULL, "seg-000002", UINT64_MAX);
	ok(rc == 0, "ingest_put of two segments (rc %d)", rc);
	off = 0;
	rc = state_ingest_get(st, NULL, "seg-000001", &off);
	ok(rc == 0 && off == 4096, "ingest_get seg-000001: 4096 (rc %d, %" PRIu64 ")", rc, off);
	rc = state_ingest_get(st, NULL, "seg-000002", &off);
	ok(rc == 0 && off == UINT64_MAX, "ingest_get seg-000002: UINT64_MAX (rc %d)", rc);
	rc = state_ingest_put(st, NULL, "seg-000001", 8192);
	rc = rc ? rc : state_ingest_get(st, NULL, "seg-000001", &off);
	ok(rc == 0 && off == 8192, "ingest_put replaces (rc %d, %" PRIu64 ")", rc, off);
	rc = state_ingest_del(st, NULL, "seg-000001");
	ok(rc == 0, "ingest_del (rc %d)", rc);
	rc = state_ingest_get(st, NULL, "seg-000001", &off);
	ok(rc == -ENOENT, "ingest_get after del: -ENOENT (rc %d)", rc);
	rc = state_ingest_get(st, NULL, "seg-000002", &off);
	ok(rc == 0 && off == UINT64_MAX, "  the other segment is kept (rc %d)", rc);
}

/* Transaction bodies. */
struct txn_arg {
	int calls;
	int fail_with;   /* returned after the puts on every call... */
	int fail_calls;  /* ...for this many calls */
};

static int txn_put_then_fail(struct state *st, DB_TXN *txn, void *arg)
{
	struct txn_arg *a = arg;
	struct state_totals t = { 1000 + (uint64_t)a->calls };
	int rc;

	a->calls++;
	rc = state_totals_put(st, txn, &t);
	if (rc == 0)
		rc = state_dirty_add(st, txn, 5, 5);
	if (rc == 0)
		rc = state_ingest_put(st, txn, a->calls == 1 ? "first-try" : "later-try", 1);
	if (rc == 0 && a->calls <= a->fail_calls)
		rc = a->fail_with;
	return rc;
}

static void test_txn(struct state *st)
{
	struct state_totals t = { 7 };
	struct txn_arg a = { 0, -ENOSPC, 1000 };
	uint64_t n = 99, off;
	int rc;

	rc = state_totals_put(st, NULL, &t);
	rc = rc ? rc : state_txn(st, txn_put_then_fail, &a);
	ok(rc == -ENOSPC && a.calls == 1, "a transaction whose fn fails returns its error, once (rc %d, %d calls)",
	   rc, a.calls);
	t.resumes = 0;
	rc = state_totals_get(st, NULL, &t);
	ok(rc == 0 && t.resumes == 7, "  its put was rolled back (resumes %" PRIu64 ")", t.resumes);
	rc = state_dirty_count(st, NULL, 5, &n);
	ok(rc == 0 && n == 0, "  its dirty_add was rolled back (n %" PRIu64 ")", n);
	rc = state_ingest_get(st, NULL, "first-try", &off);
	ok(rc == -ENOENT, "  its ingest_put was rolled back (rc %d)", rc);

	/* deadlock: aborted and run again */
	a = (struct txn_arg){ 0, -EDEADLK, 2 };
	rc = state_txn(st, txn_put_then_fail, &a);
	ok(rc == 0 && a.calls == 3, "fn failing with -EDEADLK twice is re-run and commits (rc %d, %d calls)",
	   rc, a.calls);
	rc = state_totals_get(st, NULL, &t);
	ok(rc == 0 && t.resumes == 1002, "  the last run's put is committed (resumes %" PRIu64 ")", t.resumes);
	rc = state_ingest_get(st, NULL, "first-try", &off);
	ok(rc == -ENOENT, "  the first run's put is not (rc %d)", rc);
	rc = state_ingest_get(st, NULL, "later-try", &off);
	ok(rc == 0 && off == 1, "  the last run's ingest_put is (rc %d)", rc);
	rc = state_dirty_count(st, NULL, 5, &n);
	ok(rc == 0 && n == 1, "  and its dirty_add (n %" PRIu64 ")", n);
	state_dirty_del(st, NULL, 5, 5);
	state_ingest_del(st, NULL, "later-try");
}

static void test_reopen(const char *dir)
{
	struct state st;
	struct sess g;
	struct state_progress pg;
	struct state_totals t;
	uint64_t n, off;
	int rc;

	rc = state_open(&st, dir, 0);
	ok(rc == 0, "reopen without STATE_CREATE (rc %d)", rc);
	if (rc < 0)
		return;
	memset(&g, 0, sizeof(g));
	rc = state_sess_get(&st, NULL, &g);
	ok(rc == 0 && g.state == SESS_SYNCED && g.npairs == 2 && strcmp(g.pairs[1].target, "/srv/b.img") == 0,
	   "session survived close and reopen (rc %d)", rc);
	sess_release(&g);
	rc = state_progress_get(&st, NULL, 10, &pg);
	ok(rc == 0 && pg.cursor == 99 && pg.hwm == 96, "progress survived (rc %d)", rc);
	rc = state_totals_get(&st, NULL, &t);
	ok(rc == 0 && t.resumes == 1002, "totals survived (rc %d, %" PRIu64 ")", rc, t.resumes);
	rc = state_dirty_count(&st, NULL, 0, &n);
	ok(rc == 0 && n == 7, "dirty set survived (rc %d, n %" PRIu64 ")", rc, n);
	rc = state_ingest_get(&st, NULL, "seg-000002", &off);
	ok(rc == 0 && off == UINT64_MAX, "ingest offset survived (rc %d)", rc);
	rc = state_log_checkpoint(&st, 0);
	ok(rc == 0, "state_log_checkpoint (rc %d)", rc);
	rc = state_close(&st);
	ok(rc == 0 && closed(&st), "state_close (rc %d)", rc);
	rc = state_close(&st);
	ok(rc == 0, "state_close again: 0 (idempotent) (rc %d)", rc);
}

static void test_remove(const char *dir)
{
	struct state st;
	char path[512];
	int rc;

	rc = state_remove(dir);
	ok(rc == 0, "state_remove (rc %d)", rc);
	snprintf(path, sizeof(path), "%s/volmig.db", dir);
	ok(access(path, F_OK) != 0, "  volmig.db is gone");
	rc = state_open(&st, dir, 0);
	ok(rc == -ENOENT && closed(&st), "state_open after state_remove: -ENOENT (rc %d)", rc);
	if (rc == 0)
		state_close(&st);
}

static void test_garbage(const char *dir)
{
	struct state st;
	char path[512];
	unsigned char junk[65536];
	uint64_t x = UINT64_C(0x243f6a8885a308d3);
	int fd, rc;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		junk[i] = (unsigned char)x;
	}
	snprintf(path, sizeof(path), "%s/volmig.db", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk)) {
		ok(0, "write a garbage volmig.db");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	rc = state_open(&st, dir, 0);
	ok(rc == -EBADMSG && closed(&st), "state_open of a garbage volmig.db: -EBADMSG, closed (rc %d)", rc);
	if (rc == 0)
		state_close(&st);
	rc = state_open(&st, dir, STATE_CREATE);
	ok(rc == -EBADMSG && closed(&st), "  the same with STATE_CREATE: -EBADMSG (rc %d)", rc);
	if (rc == 0)
		state_close(&st);
	state_remove(dir);
}

/* A Berkeley DB file of someone else's at dir/volmig.db: one database of
 * the given name (NULL: a file without named databases), made in a
 * transactional environment of its own like a real application's. */
static int foreign_db(const char *dir, const char *name)
{
	DB_ENV *env = NULL;
	DB *db = NULL;
	int rc;

	rc = db_env_create(&env, 0);
	if (rc != 0)
		return rc;
	rc = env->open(env, dir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL,
		       0600);
	if (rc == 0)
		rc = db_create(&db, env, 0);
	if (rc == 0) {
		rc = db->open(db, NULL, "volmig.db", name, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0600);
		db->close(db, 0);
	}
	env->close(env, 0);
	return rc;
}

static void test_foreign(const char *dir)
{
	struct state st;
	int rc;

	if (foreign_db(dir, NULL) != 0) {
		ok(0, "make a foreign Berkeley DB file");
		return;
	}
	rc = state_open(&st, dir, 0);
	ok(rc == -EBADMSG && closed(&st), "state_open of a foreign btree file: -EBADMSG (rc %d)", rc);
	if (rc == 0)
		state_close(&st);
	state_remove(dir);

	/* a database file with named databases, none of them volmig's: it is
	 * there, so this is not "no store" (-ENOENT) but a foreign one */
	if (foreign_db(dir, "other") != 0) {
		ok(0, "make a foreign Berkeley DB file with a named database");
		return;
	}
	rc = state_open(&st, dir, 0);
	ok(rc == -EBADMSG && closed(&st),
	   "state_open of a foreign file with other named databases: -EBADMSG (rc %d)", rc);
	if (rc == 0)
		state_close(&st);
	state_remove(dir);
}

static void test_errno(void)
{
	ok(state_errno(0) == 0, "state_errno(0) = 0");
	ok(state_errno(DB_NOTFOUND) == -ENOENT, "state_errno(DB_NOTFOUND) = -ENOENT");
	ok(state_errno(DB_LOCK_DEADLOCK) == -EDEADLK, "state_errno(DB_LOCK_DEADLOCK) = -EDEADLK");
	ok(state_errno(DB_RUNRECOVERY) == -EIO, "state_errno(DB_RUNRECOVERY) = -EIO");
	ok(state_errno(DB_KEYEXIST) == -EIO, "state_errno(DB_KEYEXIST) = -EIO (got %d)",
	   state_errno(DB_KEYEXIST));
	ok(state_errno(DB_PAGE_NOTFOUND) == -EIO, "state_errno(DB_PAGE_NOTFOUND) = -EIO (got %d)",
	   state_errno(DB_PAGE_NOTFOUND));
	ok(state_errno(DB_SECONDARY_BAD) == -EIO, "state_errno(DB_SECONDARY_BAD) = -EIO (got %d)",
	   state_errno(DB_SECONDARY_BAD));
	ok(state_errno(DB_VERSION_MISMATCH) == -EPROTONOSUPPORT,
	   "state_errno(DB_VERSION_MISMATCH) = -EPROTONOSUPPORT, a store of another version (got %d)",
	   state_errno(DB_VERSION_MISMATCH));
	ok(state_errno(DB_OLD_VERSION) == -EPROTONOSUPPORT,
	   "state_errno(DB_OLD_VERSION) = -EPROTONOSUPPORT, a store of another version (got %d)",
	   state_errno(DB_OLD_VERSION));
	ok(state_errno(ENOSPC) == -ENOSPC, "state_errno(ENOSPC) = -ENOSPC (a system errno)");
	ok(state_errno(EIO) == -EIO, "state_errno(EIO) = -EIO");
}

/* The control record: every field back, and a record of the layout before
 * the stop fields (48 bytes) still read, with no stop. */
static void test_control(struct state *st)
{
	struct state_control k = { 0 }, g;
	uint8_t old[48] = { 1 };
	DBT key, val;
	int rc;

	rc = state_control_get(st, NULL, &g);
	ok(rc == 0 && g.stopped == 0 && g.paused == 0, "control before any put: zero (rc %d)", rc);
	k.paused = 1;
	k.pending = SESS_COMMITTED;
	k.pending_pid = 4321;
	k.pending_start = UINT64_C(1) << 40;
	k.recovered = 2;
	k.recovered_state = SESS_SWITCHED;
	k.rate = 777;
	k.recovered_at = 1700000000;
	k.stopped = 3;
	k.stopped_size = UINT64_C(5) << 30;
	rc = state_control_put(st, NULL, &k);
	memset(&g, 0xee, sizeof(g));
	rc = rc ? rc : state_control_get(st, NULL, &g);
	ok(rc == 0 && g.paused == 1 && g.pending == SESS_COMMITTED && g.pending_pid == 4321 &&
		   g.pending_start == k.pending_start && g.recovered == 2 &&
		   g.recovered_state == SESS_SWITCHED && g.rate == 777 && g.recovered_at == 1700000000 &&
		   g.stopped == 3 && g.stopped_size == k.stopped_size,
	   "control_put/get: every field back, the stop too (rc %d)", rc);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = "control";
	key.size = 7;
	val.data = old;
	val.size = sizeof(old);
	rc = st->meta->put(st->meta, NULL, &key, &val, DB_AUTO_COMMIT);
	memset(&g, 0xee, sizeof(g));
	rc = rc ? rc : state_control_get(st, NULL, &g);
	ok(rc == 0 && g.paused == 1 && g.stopped == 0 && g.stopped_size == 0,
	   "a control record without the stop fields reads as not stopped (rc %d)", rc);
	val.size = 40;
	rc = st->meta->put(st->meta, NULL, &key, &val, DB_AUTO_COMMIT);
	rc = rc ? rc : state_control_get(st, NULL, &g);
	ok(rc == -EBADMSG, "a control record of another length is refused (rc %d)", rc);
	k = (struct state_control){ 0 };
	state_control_put(st, NULL, &k);
}

/* The failed-target-write counters: 0 until put, one per pair, a record
 * of another length refused. */
static void test_mirror_errors(struct state *st)
{
	uint64_t n = 99;
	DBT key, val;
	uint8_t short_v[4] = { 1 };
	int rc;

	rc = state_mirror_errors_get(st, NULL, 3, &n);
	ok(rc == 0 && n == 0, "mirror_errors before any put: 0 (rc %d, n %" PRIu64 ")", rc, n);
	rc = state_mirror_errors_put(st, NULL, 3, UINT64_C(1) << 40);
	rc = rc ? rc : state_mirror_errors_put(st, NULL, 63, 5);
	rc = rc ? rc : state_mirror_errors_get(st, NULL, 3, &n);
	ok(rc == 0 && n == UINT64_C(1) << 40, "mirror_errors put/get pair 3 (rc %d, n %" PRIu64 ")",
	   rc, n);
	rc = state_mirror_errors_get(st, NULL, 63, &n);
	ok(rc == 0 && n == 5, "mirror_errors of pair 63: its own (rc %d, n %" PRIu64 ")", rc, n);
	rc = state_mirror_errors_get(st, NULL, 4, &n);
	ok(rc == 0 && n == 0, "mirror_errors of pair 4: still 0 (rc %d, n %" PRIu64 ")", rc, n);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = "mirror/4";
	key.size = 8;
	val.data = short_v;
	val.size = sizeof(short_v);
	rc = st->meta->put(st->meta, NULL, &key, &val, DB_AUTO_COMMIT);
	rc = rc ? rc : state_mirror_errors_get(st, NULL, 4, &n);
	ok(rc == -EBADMSG, "a mirror_errors record of another length is refused (rc %d)", rc);
}

static int clear_txn(struct state *st, DB_TXN *txn, void *arg)
{
	return state_dirty_clear(st, txn, *(uint32_t *)arg);
}

/* Clearing one pair's dirty set removes all of it and nothing of the pairs
 * on either side (the keys of one pair are a range of the btree). */
static void test_dirty_clear(struct state *st)
{
	uint64_t n0 = 0, n1 = 0, n2 = 0;
	int rc = 0;

	for (uint64_t r = 0; rc == 0 && r < 300; r += 3) {
		rc = state_dirty_add(st, NULL, 20, r);
		rc = rc ? rc : state_dirty_add(st, NULL, 21, r * 7);
		rc = rc ? rc : state_dirty_add(st, NULL, 22, r);
	}
	rc = rc ? rc : state_txn(st, clear_txn, &(uint32_t){ 21 });
	rc = rc ? rc : state_dirty_count(st, NULL, 20, &n0);
	rc = rc ? rc : state_dirty_count(st, NULL, 21, &n1);
	rc = rc ? rc : state_dirty_count(st, NULL, 22, &n2);
	ok(rc == 0 && n0 == 100 && n1 == 0 && n2 == 100,
	   "dirty_clear of pair 21: 0 left of 100, pairs 20 and 22 keep 100 each (%llu %llu %llu, "
	   "rc %d)", (unsigned long long)n0, (unsigned long long)n1, (unsigned long long)n2, rc);
	rc = state_txn(st, clear_txn, &(uint32_t){ 23 });
	ok(rc == 0, "dirty_clear of a pair with no dirty region (rc %d)", rc);
	state_txn(st, clear_txn, &(uint32_t){ 20 });
	state_txn(st, clear_txn, &(uint32_t){ 22 });
}

struct add_arg {
	uint32_t pair;
	uint64_t from, n;
};

static int add_txn(struct state *st, DB_TXN *txn, void *arg)
{
	const struct add_arg *a = arg;
	int rc = 0;

	for (uint64_t r = a->from; rc == 0 && r < a->from + a->n; r++)
		rc = state_dirty_add(st, txn, a->pair, r);
	return rc;
}

/* The number of log files in dir, and the largest one's size. */
static unsigned log_files(const char *dir, off_t *largest)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat sb;
	char path[512];
	unsigned n = 0;

	*largest = 0;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "log.", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) == 0 && sb.st_size > *largest)
			*largest = sb.st_size;
		n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

/*
 * A writer killed after its commits ran the log over three files: reopening
 * recovers every commit, and no log file grew past STATE_LOG_FILE_BYTES
 * (what recovery writes zeros over, and so what a restart pays for).
 */
#define KILL_TXN_ADDS 500

static void test_kill_across_logs(const char *dir)
{
	struct state st;
	uint64_t committed = 0, n = 0;
	unsigned nlogs;
	off_t largest;
	int fds[2], status = 0, rc;
	pid_t pid;

	rc = state_open(&st, dir, STATE_CREATE);
	rc = rc ? rc : state_close(&st);
	if (rc < 0 || pipe(fds) < 0) {
		ok(0, "a new store for the kill test (rc %d)", rc);
		return;
	}
	pid = fork();
	if (pid == 0) {
		char third[512];
		struct stat sb;

		close(fds[0]);
		snprintf(third, sizeof(third), "%s/log.0000000003", dir);
		if (state_open(&st, dir, 0) < 0)
			_exit(2);
		/* 1000 transactions is over 20 MiB of log: a bound, not a goal */
		for (uint64_t t = 0; t < 1000 && stat(third, &sb) < 0; t++) {
			struct add_arg a = { 30, t * KILL_TXN_ADDS, KILL_TXN_ADDS };

			if (state_txn(&st, add_txn, &a) < 0)
				_exit(3);
			committed += KILL_TXN_ADDS;
			if (write(fds[1], &committed, sizeof(committed)) != sizeof(committed))
				_exit(4);
		}
		raise(SIGKILL); /* no close: the store as a kill leaves it */
		_exit(5);
	}
	close(fds[1]);
	while (pid > 0 && read(fds[0], &n, sizeof(n)) == sizeof(n))
		committed = n;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	ok(pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	   "the writer was killed after %llu regions committed (status %#x)",
	   (unsigned long long)committed, status);
	nlogs = log_files(dir, &largest);
	ok(nlogs >= 3 && largest <= STATE_LOG_FILE_BYTES,
	   "  its log ran over %u files, the largest %lld bytes (at most %u)", nlogs,
	   (long long)largest, STATE_LOG_FILE_BYTES);
	rc = state_open(&st, dir, 0);
	ok(rc == 0, "  reopening recovers the store (rc %d)", rc);
	if (rc < 0)
		return;
	n = 0;
	rc = state_dirty_count(&st, NULL, 30, &n);
	ok(rc == 0 && committed > 0 && n == committed,
	   "  every committed region is there (%llu of %llu, rc %d)", (unsigned long long)n,
	   (unsigned long long)committed, rc);
	rc = state_txn(&st, add_txn, &(struct add_arg){ 30, committed, 1 });
	ok(rc == 0, "  and a new commit goes on from the recovered log (rc %d)", rc);
	nlogs = log_files(dir, &largest);
	ok(largest <= STATE_LOG_FILE_BYTES, "  no log file past %u bytes after recovery (%lld)",
	   STATE_LOG_FILE_BYTES, (long long)largest);
	state_close(&st);
}

/* Log bytes written since the environment's last checkpoint. */
static uint64_t log_since_ckpt(struct state *st)
{
	DB_LOG_STAT *ls = NULL;
	uint64_t n;

	if (st->env->log_stat(st->env, &ls, 0) != 0 || ls == NULL)
		return UINT64_MAX;
	n = (uint64_t)ls->st_wc_mbytes * 1024 * 1024 + ls->st_wc_bytes;
	free(ls);
	return n;
}

/*
 * A copier commits a checkpoint every interval for as long as it runs.
 * state_log_checkpoint(kbytes) takes a Berkeley DB checkpoint once kbytes
 * were logged since the last one, and log files recovery no longer needs go:
 * the log stays a few files long, and a restart replays what came after the
 * last checkpoint only.
 */
static void test_log_trim(const char *dir)
{
	struct state st;
	char third[512];
	struct stat sb;
	uint64_t committed = 0, n = 0, since;
	unsigned nlogs;
	off_t largest;
	int rc;

	snprintf(third, sizeof(third), "%s/log.0000000003", dir);
	rc = state_open(&st, dir, STATE_CREATE);
	ok(rc == 0, "a new store for the trim test (rc %d)", rc);
	if (rc < 0)
		return;
	for (uint64_t t = 0; rc == 0 && t < 1000 && stat(third, &sb) < 0; t++) {
		rc = state_txn(&st, add_txn, &(struct add_arg){ 31, t * KILL_TXN_ADDS, KILL_TXN_ADDS });
		committed += rc == 0 ? KILL_TXN_ADDS : 0;
	}
	since = log_since_ckpt(&st);
	nlogs = log_files(dir, &largest);
	ok(rc == 0 && nlogs >= 3 && since > (uint64_t)STATE_LOG_FILE_BYTES &&
		   since != UINT64_MAX,
	   "%llu regions committed over %u log files, %llu bytes since the last checkpoint (rc %d)",
	   (unsigned long long)committed, nlogs, (unsigned long long)since, rc);
	/* not due: more than that was logged, so no checkpoint, nothing goes */
	rc = state_log_checkpoint(&st, (unsigned)(since / 1024) + 64);
	ok(rc == 0 && log_since_ckpt(&st) == since && log_files(dir, &largest) == nlogs,
	   "  with a threshold past what was logged, no checkpoint: %u files kept (rc %d)",
	   log_files(dir, &largest), rc);
	rc = state_log_checkpoint(&st, STATE_LOG_TRIM_KBYTES);
	since = log_since_ckpt(&st);
	ok(rc == 0 && since < 1024, "  past STATE_LOG_TRIM_KBYTES it checkpoints: %llu bytes since (rc %d)",
	   (unsigned long long)since, rc);
	ok(log_files(dir, &largest) <= 2, "  and the log files recovery needs no more are gone: "
	   "%u of %u left", log_files(dir, &largest), nlogs);
	rc = state_txn(&st, add_txn, &(struct add_arg){ 31, committed, 1 });
	rc = rc ? rc : state_dirty_count(&st, NULL, 31, &n);
	ok(rc == 0 && n == committed + 1, "  every region is still there, and a commit goes on "
	   "(%llu of %llu, rc %d)", (unsigned long long)n, (unsigned long long)committed + 1, rc);
	state_close(&st);
}

int main(void)
{
	struct state st;
	char dir[256], dir2[256], dir3[256], dir4[256];
	int rc;

	if (mkdtemp(scratch) == NULL) {
		ok(0, "mkdtemp %s", scratch);
		return tap_done();
	}
	if (fresh_dir(dir, sizeof(dir), "store") < 0 || fresh_dir(dir2, sizeof(dir2), "garbage") < 0 ||
	    fresh_dir(dir3, sizeof(dir3), "killed") < 0 || fresh_dir(dir4, sizeof(dir4), "trim") < 0) {
		ok(0, "scratch directories");
		goto out;
	}
	test_open_missing(dir);
	rc = state_open(&st, dir, STATE_CREATE);
	ok(rc == 0 && st.env && st.meta && st.dirty && st.ingest, "state_open with STATE_CREATE (rc %d)", rc);
	if (rc == 0) {
		test_records(&st);
		test_control(&st);
		test_mirror_errors(&st);
		test_dirty_clear(&st);
		test_txn(&st);
		rc = state_close(&st);
		ok(rc == 0 && closed(&st), "state_close (rc %d)", rc);
		test_reopen(dir);
		test_remove(dir);
	}
	test_kill_across_logs(dir3);
	test_log_trim(dir4);
	test_garbage(dir2);
	test_foreign(dir2);
	test_errno();
out:
	rm_tree(scratch);
	return tap_done();
}
