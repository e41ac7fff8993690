/*
 * replay.c: a main() for the fuzz harnesses without libFuzzer. It feeds every file of the given
 * directories (a harness's seed corpus, the crash reproducers kept there included) to the
 * harness's LLVMFuzzerTestOneInput, in name order, each in a malloc'd buffer of exactly its size.
 * The regular test trees (gcc, Release and ASan + UBSan) build each harness with it, so the corpus
 * is a regression test there too (tests/fuzz/CMakeLists.txt: test_fuzz_replay_<harness>); a
 * harness reports a broken property by abort(), a sanitizer by its own report.
 *
 * Usage: replay_fuzz_HARNESS DIR|FILE...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  uint8_t *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t *p = realloc(buf, cap);
      if (!p) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = p;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  /* exactly n bytes, so that ASan sees a read past the end */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  if (n) memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) != 0) return 1;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) return 1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      if (n == cap) {
        cap = cap ? cap * 2 : 64;
        char **p = realloc(names, cap * sizeof *names);
        if (!p) return 1;
        names = p;
      }
      names[n] = strdup(e->d_name);
      if (!names[n]) return 1;
      n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t k = 0; k < n; k++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
      if (run_file(path) != 0) return 1;
      files++;
      free(names[k]);
    }
    free(names);
  }
  printf("replay: %d inputs, no failure\n", files);
  return files > 0 ? 0 : 1;
}
