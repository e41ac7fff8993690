/*
 * test_stop_text.c: daemon/scheduler/stop_text.c, the stop strings of a generation stream: a take
 * before any text arrived (the buffer still NULL: it must not reach memmem, which UBSan flags;
 * mlxrd hit it when a catalog model's default `stop` parameter met a first empty step), a tail
 * that may grow into a stop string held back, a stop string split across appends found and cut.
 */
#include <string.h>

#include "check.h"
#include "daemon/scheduler/stop_text.h"

int main(void) {
  const char *stops[] = {"<end>", ""};
  mlxr_stop_text st;
  CHECK(mlxr_stop_text_init(&st, stops, 2) == 0, "init");
  const char *out = NULL;
  size_t n = 99;
  bool stopped = true;
  mlxr_stop_text_take(&st, false, &out, &n, &stopped); /* nothing appended yet */
  CHECK(n == 0 && !stopped, "empty take: %zu bytes, stopped %d", n, stopped);
  mlxr_stop_text_take(&st, true, &out, &n, &stopped);
  CHECK(n == 0 && !stopped, "empty final take: %zu bytes, stopped %d", n, stopped);
  CHECK(mlxr_stop_text_append(&st, "ab<e", 4) == 0, "append");
  mlxr_stop_text_take(&st, false, &out, &n, &stopped);
  CHECK(n == 2 && memcmp(out, "ab", 2) == 0 && !stopped, "the tail '<e' held back: %zu bytes", n);
  CHECK(mlxr_stop_text_append(&st, "nd>x", 4) == 0, "append");
  mlxr_stop_text_take(&st, false, &out, &n, &stopped);
  CHECK(n == 0 && stopped && st.hit == 0, "the split stop string found: %zu bytes, stopped %d", n, stopped);
  mlxr_stop_text_free(&st);
  return check_report("stop_text");
}
