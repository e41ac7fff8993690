/*
 * stop_text.h: the text side of one generation stream: stop strings that must never be emitted,
 * even when split across tokens. Text is appended as it is detokenized; mlxr_stop_text_take()
 * returns the part that can safely go to the client (everything except a tail that could still
 * become a stop string), or reports that a stop string occurred (then only the text before it is
 * returned). Owned by one request; no threads.
 */
#ifndef MLXR_DAEMON_STOP_TEXT_H
#define MLXR_DAEMON_STOP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mlxr_stop_text {
  char **stops;     /* owned copies */
  size_t *stop_len;
  int n_stops;
  char *buf;        /* held-back text */
  size_t len, cap;
  char *out;        /* what the last take returned */
  size_t out_cap;
  int hit;          /* index in stops of the string found by the last take that stopped */
} mlxr_stop_text;

/* Copies the stop strings (empty strings are ignored). Returns 0 or MLXR_ERR_NOMEM. */
int mlxr_stop_text_init(mlxr_stop_text *st, const char *const *stops, int n_stops);
void mlxr_stop_text_free(mlxr_stop_text *st);
int mlxr_stop_text_append(mlxr_stop_text *st, const char *text, size_t len);
/* Moves the emittable prefix into *out / *out_len (owned by st, valid until the next take); *stopped = true if a stop string was found (the text from it on is dropped; st->hit says
 * which: stops[hit]). With final = true, nothing is held back. */
void mlxr_stop_text_take(mlxr_stop_text *st, bool final, const char **out, size_t *out_len,
                         bool *stopped);

#endif
