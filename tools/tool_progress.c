/*
 * tool_progress.c: the progress bar that `mlxr convert` and `mlxr quantize` draw on stderr
 * (declared in convert.h). One line, redrawn in place with a carriage return; the caller only
 * installs it when stderr is a terminal.
 */
#include <stdio.h>

#include "tools/convert.h"

void mlxr_tool_progress_stderr(void *user, int64_t i, int64_t n, uint64_t bytes_done,
                               uint64_t bytes_total, const char *name) {
  const char *label = user ? (const char *)user : "";
  enum { WIDTH = 30 };
  char bar[WIDTH + 1];
  const double frac = bytes_total ? (double)bytes_done / (double)bytes_total
                                  : (n ? (double)i / (double)n : 1.0);
  int fill = (int)(frac * WIDTH + 0.5);
  if (fill > WIDTH) fill = WIDTH;
  for (int k = 0; k < WIDTH; k++) bar[k] = k < fill ? '#' : '.';
  bar[WIDTH] = '\0';
  /* \033[K clears the rest of the line left by a longer previous name. */
  fprintf(stderr, "\r%s [%s] %lld/%lld %.1f/%.1f MiB %.40s\033[K", label, bar, (long long)i,
          (long long)n, (double)bytes_done / 1048576.0, (double)bytes_total / 1048576.0,
          name ? name : "");
  if (!name) fputc('\n', stderr);
  fflush(stderr);
}
