/*
 * Replays a fuzz target's corpus without libFuzzer: every file of every
 * directory (or file) named on the command line is given to the target
 * once. Built when meson's fuzzing_engine is "none", so that `make check`
 * runs each corpus in the plain and the sanitizer builds.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = NULL;
	long n;
	int ret = -1;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* Exactly the input's size, so that reading past it is seen. */
	if ((data = malloc(n > 0 ? (size_t)n : 1)) == NULL ||
	    fread(data, 1, (size_t)n, f) != (size_t)n)
		goto out;
	LLVMFuzzerTestOneInput(data, (size_t)n);
	ret = 0;
out:
	if (ret != 0)
		fprintf(stderr, "cannot read %s\n", path);
	free(data);
	if (f)
		fclose(f);
	return ret;
}

int
main(int argc, char **argv)
{
	int i, files = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		struct stat sb;
		struct dirent *e;
		DIR *d;

		if (stat(argv[i], &sb) != 0) {
			fprintf(stderr, "cannot read %s\n", argv[i]);
			failed++;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			failed += replay_file(argv[i]) != 0;
			files++;
			continue;
		}
		if ((d = opendir(argv[i])) == NULL) {
			failed++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
			    e->d_name);
			failed += replay_file(path) != 0;
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	return failed || files == 0 ? 1 : 0;
}
