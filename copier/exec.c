/*
 * volmig exec: run a program under the shim (libvolmig.so).
 *
 * The shim is found as $VOLMIG_SHIM, else next to the volmig binary (the
 * build tree), else in ../lib/volmig/ from it (an installed tree).  It is
 * appended to any LD_PRELOAD already set, and VOLMIG_STATE names the state
 * directory as an absolute path (the program may chdir).  The session need
 * not exist yet: the shim picks it up when `volmig setup` makes it.
 *
 * A statically linked program ignores LD_PRELOAD, so its writes could not
 * be seen: it is refused (I8).  A setuid or setgid program runs with
 * LD_PRELOAD ignored unless the shim is in a trusted directory: a warning.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

enum { EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

static const char exec_help[] =
	"usage: volmig exec -s DIR [--allow-shared-mmap] -- PROGRAM [ARGS]...\n\n"
	"Run PROGRAM with the volmig shim preloaded, so that its writes to the\n"
	"session's source volumes are tracked (and, once synced, mirrored) while\n"
	"it runs.  Children and programs it executes stay under the shim.  The\n"
	"session may be set up before or after the program starts.\n\n"
	"  -s, --state DIR        state directory (default $VOLMIG_STATE)\n"
	"      --allow-shared-mmap  allow writable shared mappings of a source (else\n"
	"                         refused with EACCES): the mapped regions stay\n"
	"                         dirty while mapped, and a commit waits for them\n"
	"  -h, --help             show this help\n\n"
	"Environment: VOLMIG_SHIM names the shim library to use; VOLMIG_WAIT_MS\n"
	"bounds how long a write waits for a region under copy (default 100).\n\n"
	"A statically linked PROGRAM is refused: the shim could not see its writes.\n"
	"A setuid or setgid PROGRAM gets a warning: the loader may ignore the shim.\n\n"
	"Exit status: PROGRAM's own; 1 when PROGRAM is refused, 2 usage error,\n"
	"126 when PROGRAM cannot be run, 127 when it is not found.\n";

/* The shim library, or NULL (reported). */
static char *find_shim(void)
{
	static const char *const rel[] = { "libvolmig.so", "../lib/volmig/libvolmig.so" };
	char exe[PATH_MAX], cand[PATH_MAX + 64], *slash, *out;
	const char *env = getenv("VOLMIG_SHIM");
	ssize_t n;

	if (env != NULL && *env != '\0') {
		out = realpath(env, NULL);
		if (out == NULL)
			report_errno("cannot use the shim named by VOLMIG_SHIM", env, -errno);
		return out;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		report_errno("cannot find the volmig binary", "/proc/self/exe", -errno);
		return NULL;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash != NULL)
		slash[1] = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
		if (access(cand, R_OK) == 0)
			return realpath(cand, NULL);
	}
	log_err("cannot find libvolmig.so next to %s or in %s../lib/volmig/; set VOLMIG_SHIM",
		exe, exe);
	return NULL;
}

/* PROGRAM as execvp would find it, into path; 0 or -errno. */
static int resolve(const char *prog, char *path, size_t len)
{
	const char *p = getenv("PATH");
	int first_err = -ENOENT;

	if (strchr(prog, '/') != NULL) {
		if ((size_t)snprintf(path, len, "%s", prog) >= len)
			return -ENAMETOOLONG;
		return access(path, F_OK) == 0 ? 0 : -errno;
	}
	if (p == NULL || *p == '\0')
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p != '\0') {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if ((size_t)snprintf(path, len, "%.*s%s%s", (int)n, p, n ? "/" : "", prog) < len) {
			if (access(path, X_OK) == 0)
				return 0;
			if (errno != ENOENT && first_err == -ENOENT)
				first_err = -errno;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return first_err;
}

/*
 * Is path a statically linked ELF program?  1 yes, 0 no (dynamic, a script,
 * or not ELF: execve decides), -errno when it cannot be read.
 */
static int is_static_elf(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(ph))
		goto out; /* not a 64-bit ELF program: nothing to say */
	rc = 1;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph)) {
			rc = 0;
			break;
		}
		if (ph.p_type == PT_INTERP) {
			rc = 0; /* the dynamic loader runs it: LD_PRELOAD works */
			break;
		}
	}
out:
	close(fd);
	return rc;
}

/* dir as an absolute path, whether it exists yet or not (malloc'ed). */
static char *absolute_dir(const char *dir)
{
	char cwd[PATH_MAX], *out;
	size_t len;

	out = realpath(dir, NULL);
	if (out != NULL || dir[0] == '/')
		return out ? out : strdup(dir);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	len = strlen(cwd) + strlen(dir) + 2;
	out = malloc(len);
	if (out != NULL)
		snprintf(out, len, "%s/%s", cwd, dir);
	return out;
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "allow-shared-mmap", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = NULL, *dir, *pre;
	bool allow_mmap = false;
	char path[PATH_MAX], *shim, *adir, *val;
	struct stat sb;
	size_t len;
	int c, rc;

	optind = 1;
	/* '+': stop at the first non-option, so PROGRAM's own options stay its own */
	while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir_arg = optarg;
			break;
		case 'M':
			allow_mmap = true;
			break;
		case 'h':
			cli_usage(true, exec_help);
			return EXIT_OK;
		default:
			cli_usage(false, exec_help);
			return EXIT_USAGE;
		}
	}
	dir = cli_state_dir(dir_arg);
	if (dir == NULL || optind >= argc) {
		log_err(dir == NULL ? "no state directory: give -s DIR or set VOLMIG_STATE"
				    : "no program to run: give -- PROGRAM [ARGS]");
		cli_usage(false, exec_help);
		return EXIT_USAGE;
	}
	rc = resolve(argv[optind], path, sizeof(path));
	if (rc < 0) {
		report_errno("cannot run", argv[optind], rc);
		return rc == -ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
	}
	rc = is_static_elf(path);
	if (rc < 0) {
		report_errno("cannot run", path, rc);
		return EXIT_CANNOT_RUN;
	}
	if (rc == 1) {
		log_err("%s is statically linked: the volmig shim cannot see its writes, so it "
			"is not run (use a dynamically linked build of it)", path);
		return EXIT_FAIL;
	}
	if (stat(path, &sb) == 0 && (sb.st_mode & (S_ISUID | S_ISGID)))
		log_warn("%s is set%cid: the dynamic loader ignores LD_PRELOAD for it unless "
			 "the shim is in a trusted directory and itself setuid; its writes may "
			 "go untracked", path, (sb.st_mode & S_ISUID) ? 'u' : 'g');
	shim = find_shim();
	if (shim == NULL)
		return EXIT_FAIL;
	adir = absolute_dir(dir);
	if (adir == NULL) {
		report_errno("cannot resolve the state directory", dir, -errno);
		free(shim);
		return EXIT_FAIL;
	}
	pre = getenv("LD_PRELOAD");
	len = strlen(shim) + (pre ? strlen(pre) : 0) + 2;
	val = malloc(len);
	if (val == NULL) {
		log_err("out of memory");
		return EXIT_FAIL;
	}
	if (pre != NULL && *pre != '\0')
		snprintf(val, len, "%s %s", pre, shim);
	else
		snprintf(val, len, "%s", shim);
	if (setenv("LD_PRELOAD", val, 1) < 0 || setenv("VOLMIG_STATE", adir, 1) < 0 ||
	    (allow_mmap && setenv("VOLMIG_ALLOW_SHARED_MMAP", "1", 1) < 0)) {
		report_errno("cannot set the environment for", argv[optind], -errno);
		return EXIT_FAIL;
	}
	execv(path, argv + optind);
	rc = -errno;
	report_errno("cannot run", path, rc);
	return rc == -ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
