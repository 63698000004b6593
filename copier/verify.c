/*
 * volmig verify: compare source and target over every region recorded clean
 * (below the cursor and not in the dirty set); the whole volume once synced.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "log.h"
#include "region.h"
#include "size.h"

static const char verify_help[] =
	"usage: volmig verify -s DIR\n\n"
	"Read every region the session records as copied, from the source and from\n"
	"the target, and compare them byte for byte.  Once the session is synced\n"
	"that is the whole volume.  Exit status 0 when all compared regions are\n"
	"identical, 1 at the first difference (named by pair and offset) or error.\n"
	"Writes to the source while it runs may show as differences.\n\n"
	"  -s, --state DIR   state directory (default $VOLMIG_STATE)\n"
	"  -h, --help        show this help\n";

struct verify_data {
	struct state_progress prog[SESS_MAX_PAIRS];
	struct region_map dirty[SESS_MAX_PAIRS];
	uint32_t npairs;
};

static int verify_txn(struct state *st, DB_TXN *txn, void *arg)
{
	struct verify_data *d = arg;
	int rc = 0;

	for (uint32_t i = 0; i < d->npairs && rc == 0; i++) {
		region_map_clear_range(&d->dirty[i], 0, d->dirty[i].nbits);
		rc = state_progress_get(st, txn, i, &d->prog[i]);
		if (rc == 0)
			rc = state_dirty_load(st, txn, i, &d->dirty[i], NULL);
	}
	return rc;
}

static int verify_pair(const struct sess *s, uint32_t i, const struct verify_data *d,
		       uint64_t *regions, uint64_t *bytes)
{
	const struct sess_pair *p = &s->pairs[i];
	uint64_t rsize = UINT64_C(1) << s->region_shift;
	unsigned char *a = NULL, *b = NULL;
	int sfd = -1, tfd = -1, rc = 0;

	sfd = open(p->source, O_RDONLY | O_CLOEXEC);
	if (sfd < 0) {
		rc = -errno;
		report_errno("cannot open source", p->source, rc);
		goto out;
	}
	tfd = open(p->target, O_RDONLY | O_CLOEXEC);
	if (tfd < 0) {
		rc = -errno;
		report_errno("cannot open target", p->target, rc);
		goto out;
	}
	a = malloc(rsize);
	b = malloc(rsize);
	if (a == NULL || b == NULL) {
		rc = -ENOMEM;
		log_err("out of memory");
		goto out;
	}
	for (uint64_t r = 0; r < d->prog[i].cursor; r++) {
		uint64_t off = r << s->region_shift;
		uint64_t cap = sess_capacity(p);
		size_t len = (size_t)(cap - off < rsize ? cap - off : rsize);
		ssize_t na, nb;

		if (region_map_test(&d->dirty[i], r))
			continue;
		na = io_pread_full(sfd, a, len, off);
		nb = io_pread_full(tfd, b, len, off);
		if (na < 0 || nb < 0) {
			rc = (int)(na < 0 ? na : nb);
			log_err("%s %s: read at offset %llu failed: %s", na < 0 ? "source" : "target",
				na < 0 ? p->source : p->target, (unsigned long long)off, strerror(-rc));
			goto out;
		}
		/* past a file source's end: a file target ends there too, a block
		 * device reads as zeros */
		if (p->source_id.kind == SESS_KIND_FILE && (size_t)na < len) {
			memset(a + na, 0, len - (size_t)na);
			if (p->target_id.kind == SESS_KIND_BLOCK)
				na = (ssize_t)len;
			else if (nb == na) { /* the same end */
				memset(b + nb, 0, len - (size_t)nb);
				na = nb = (ssize_t)len;
			}
		}
		if ((size_t)na != len || (size_t)nb != len || memcmp(a, b, len) != 0) {
			size_t k = 0;

			while (k < len && k < (size_t)na && k < (size_t)nb && a[k] == b[k])
				k++;
			log_err("pair %u: target %s differs from source %s at offset %llu (region %llu)",
				i, p->target, p->source, (unsigned long long)(off + k),
				(unsigned long long)r);
			rc = -EIO;
			goto out;
		}
		(*regions)++;
		*bytes += len;
	}
out:
	free(a);
	free(b);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	const char *dir;
	struct verify_data *d = NULL;
	uint64_t regions = 0, bytes = 0, total = 0;
	struct state st;
	struct sess s;
	int rc, ret = EXIT_FAIL;
	char hb[32];

	dir = cli_parse_dir(argc, argv, verify_help, NULL, NULL, &ret);
	if (dir == NULL)
		return ret;
	ret = EXIT_FAIL;
	if (session_open(dir, &st, &s) < 0)
		return EXIT_FAIL;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		log_err("out of memory");
		goto out;
	}
	d->npairs = s.npairs;
	for (uint32_t i = 0; i < s.npairs; i++) {
		if (region_map_init(&d->dirty[i],
				    region_count(sess_capacity(&s.pairs[i]), s.region_shift)) < 0) {
			log_err("out of memory");
			goto out;
		}
		total += sess_capacity(&s.pairs[i]);
	}
	rc = state_txn(&st, verify_txn, d);
	if (rc < 0) {
		report_errno("cannot read progress from", dir, rc);
		goto out;
	}
	for (uint32_t i = 0; i < s.npairs; i++)
		if (verify_pair(&s, i, d, &regions, &bytes) < 0)
			goto out;
	log_info("verified %llu region%s (%s of %s): target identical to source",
		 (unsigned long long)regions, regions == 1 ? "" : "s",
		 size_format(bytes, hb, sizeof(hb)), size_format(total, (char[32]){ 0 }, 32));
	ret = EXIT_OK;
out:
	if (d != NULL)
		for (uint32_t i = 0; i < s.npairs; i++)
			region_map_release(&d->dirty[i]);
	free(d);
	sess_release(&s);
	state_close(&st);
	return ret;
}
