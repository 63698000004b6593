/*
 * volmig: parse the subcommand and dispatch.  Each subcommand parses its own
 * options in its own file.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

#ifndef VOLMIG_VERSION
#define VOLMIG_VERSION "0.1.0"
#endif

static const struct command commands[] = {
	{ "setup", cmd_setup, "record a new session: pairs of source and target volumes" },
	{ "sync", cmd_sync, "copy sources to targets; resume whatever was interrupted" },
	{ "status", cmd_status, "show the session's state and progress (--json for scripts)" },
	{ "exec", cmd_exec, "run a program with the shim, so its writes are tracked" },
	{ "switch", cmd_switch, "send running programs' reads to the targets (--source: back)" },
	{ "commit", cmd_commit, "make the targets the volumes in use, for good" },
	{ "pause", cmd_pause, "stop a running copier from copying (writes stay tracked)" },
	{ "resume", cmd_resume, "let a paused copier go on" },
	{ "throttle", cmd_throttle, "set a running copier's bandwidth limit" },
	{ "verify", cmd_verify, "compare every region recorded clean, source against target" },
	{ "abort", cmd_abort, "give up the migration; the source stays the volume in use" },
	{ "cleanup", cmd_cleanup, "remove a finished session's state directory" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: volmig COMMAND -s STATE_DIR [OPTIONS]\n\n"
		   "Migrate a volume (block device or file) to another while applications\n"
		   "keep using it; progress survives kills, crashes and restarts.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nThe state directory may also be given as $VOLMIG_STATE.\n"
		   "'volmig COMMAND --help' describes a command's options.\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("volmig %s\n", VOLMIG_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	}
	log_err("unknown command '%s'", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
