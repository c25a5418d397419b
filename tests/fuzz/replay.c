/*
 * replay - run a fuzz harness over its seed corpus, for make check.
 *
 * Built with the ordinary compiler and linked with one fuzz_*.c, so the
 * committed corpus (FUZZ_CORPUS_ROOT/FUZZ_NAME, set by Makefile.am) is
 * replayed on every check without clang.  A harness reports a broken
 * invariant by abort(), which fails the test.  A missing or empty corpus
 * fails too: a replay that runs nothing proves nothing.
 *
 * With arguments, replays those files (or directories) instead, which is
 * how a crash from "make fuzz" is reproduced under a debugger:
 *   tests/fuzz/replay_policy crash-0123abcd
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_CORPUS_ROOT
#error "FUZZ_CORPUS_ROOT must name the corpus directory"
#endif
#ifndef FUZZ_NAME
#error "FUZZ_NAME must name the harness"
#endif

/* Read a whole file; returns 0 or a negative errno. */
static int
read_file(const char *path, uint8_t **out, size_t *outlen)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	if (fp == NULL)
		return -errno;
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *grown;

			cap = cap == 0 ? 4096 : cap * 2;
			grown = realloc(buf, cap);
			if (grown == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			buf = grown;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp))
				rc = -EIO;
			break;
		}
	}
out:
	fclose(fp);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int
replay_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = read_file(path, &data, &len);

	if (rc < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, path,
			strerror(-rc));
		return rc;
	}
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every regular file in dir, in name order; counts into *n. */
static int
replay_dir(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t count = 0, cap = 0, i, size;
	int rc = 0;

	if (d == NULL) {
		rc = -errno;
		fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, dir,
			strerror(errno));
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (count == cap) {
			char **grown;

			cap = cap == 0 ? 64 : cap * 2;
			grown = realloc(names, cap * sizeof(*names));
			if (grown == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			names = grown;
		}
		size = strlen(dir) + strlen(e->d_name) + 2;
		names[count] = malloc(size);
		if (names[count] == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(names[count], size, "%s/%s", dir, e->d_name);
		count++;
	}
	if (count > 1)
		qsort(names, count, sizeof(*names), cmp_names);
	for (i = 0; i < count && rc == 0; i++) {
		struct stat st;

		if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		rc = replay_file(names[i]);
		if (rc == 0)
			(*n)++;
	}
out:
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

static int
replay_path(const char *path, size_t *n)
{
	struct stat st;
	int rc;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, path,
			strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(path, n);
	rc = replay_file(path);
	if (rc == 0)
		(*n)++;
	return rc;
}

int
main(int argc, char **argv)
{
	const char *corpus = FUZZ_CORPUS_ROOT "/" FUZZ_NAME;
	size_t n = 0;
	int rc = 0;

	if (argc > 1) {
		for (int i = 1; i < argc && rc == 0; i++)
			rc = replay_path(argv[i], &n);
	} else {
		rc = replay_dir(corpus, &n);
	}
	if (rc < 0)
		return 1;
	if (n == 0) {
		fprintf(stderr, "replay_%s: no inputs in %s\n", FUZZ_NAME,
			argc > 1 ? "the given paths" : corpus);
		return 1;
	}
	printf("replay_%s: replayed %zu inputs from %s\n", FUZZ_NAME, n,
	       argc > 1 ? "the given paths" : corpus);
	return 0;
}
