/*
 * scratch: removing a unit test's scratch directory.
 *
 *   rm_tree(dir);   dir and everything under it (best effort)
 *
 * Header-only, like tap.h.
 */
#ifndef VOLMIG_SCRATCH_H
#define VOLMIG_SCRATCH_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((unused))
static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			rm_tree(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

#endif
