/* stop_text.c: see stop_text.h. The held-back tail is the longest suffix of the buffer that is a
 * proper prefix of some stop string; a stop string always starts with a UTF-8 lead byte, so the
 * split never cuts a character. */
#include "daemon/scheduler/stop_text.h"

#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

int mlxr_stop_text_init(mlxr_stop_text *st, const char *const *stops, int n_stops) {
  memset(st, 0, sizeof(*st));
  if (n_stops > 0) {
    st->stops = calloc((size_t)n_stops, sizeof(char *));
    st->stop_len = calloc((size_t)n_stops, sizeof(size_t));
    if (!st->stops || !st->stop_len) return MLXR_ERR_NOMEM;
  }
  for (int i = 0; i < n_stops; i++) {
    if (!stops[i] || !stops[i][0]) continue;
    size_t n = strlen(stops[i]);
    char *copy = malloc(n + 1);
    if (!copy) return MLXR_ERR_NOMEM;
    memcpy(copy, stops[i], n + 1);
    st->stops[st->n_stops] = copy;
    st->stop_len[st->n_stops++] = n;
  }
  return MLXR_OK;
}

void mlxr_stop_text_free(mlxr_stop_text *st) {
  for (int i = 0; i < st->n_stops; i++) free(st->stops[i]);
  free(st->stops);
  free(st->stop_len);
  free(st->buf);
  free(st->out);
  memset(st, 0, sizeof(*st));
}

int mlxr_stop_text_append(mlxr_stop_text *st, const char *text, size_t len) {
  if (st->len + len + 1 > st->cap) {
    size_t cap = (st->len + len + 1) * 2;
    char *nb = realloc(st->buf, cap);
    if (!nb) return MLXR_ERR_NOMEM;
    st->buf = nb;
    st->cap = cap;
  }
  memcpy(st->buf + st->len, text, len);
  st->len += len;
  return MLXR_OK;
}

void mlxr_stop_text_take(mlxr_stop_text *st, bool final, const char **out, size_t *out_len,
                         bool *stopped) {
  *stopped = false;
  size_t emit = st->len;
  /* earliest complete stop string */
  for (int i = 0; i < st->n_stops; i++) {
    /* nothing held yet: buf may still be NULL, which memmem must not get */
    const char *hit = st->len ? memmem(st->buf, st->len, st->stops[i], st->stop_len[i]) : NULL;
    if (hit && (size_t)(hit - st->buf) <= emit) {
      emit = (size_t)(hit - st->buf);
      *stopped = true;
      st->hit = i;
    }
  }
  if (!*stopped && !final) {
    /* hold back a tail that may grow into a stop string */
    for (int i = 0; i < st->n_stops; i++) {
      size_t maxk = st->stop_len[i] - 1 < st->len ? st->stop_len[i] - 1 : st->len;
      for (size_t k = maxk; k > 0; k--) {
        if (memcmp(st->buf + st->len - k, st->stops[i], k) == 0) {
          if (st->len - k < emit) emit = st->len - k;
          break;
        }
      }
    }
  }
  if (emit + 1 > st->out_cap) {
    char *nb = realloc(st->out, emit + 1);
    if (!nb) { /* hold everything back this time; retried on the next take */
      *out = "";
      *out_len = 0;
      *stopped = false;
      return;
    }
    st->out = nb;
    st->out_cap = emit + 1;
  }
  if (emit) memcpy(st->out, st->buf, emit);
  st->out[emit] = '\0';
  *out = st->out;
  *out_len = emit;
  if (*stopped) {
    st->len = 0; /* the stream ends here; what followed the stop string is dropped */
  } else {
    if (st->len > emit) memmove(st->buf, st->buf + emit, st->len - emit);
    st->len -= emit;
  }
}
