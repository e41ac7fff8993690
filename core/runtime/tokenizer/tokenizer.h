/*
 * tokenizer.h: text <-> token ids, loaded from a model file's metadata.
 *
 * Two model kinds, as GGUF names them in tokenizer.ggml.model:
 *   "llama"  SentencePiece-style BPE: merges chosen by token score, <0xXX> byte fallback,
 *            space prefix / Metaspace (U+2581 for spaces);
 *   "gpt2"   byte-level BPE: GPT-2's byte->unicode map, merges ranked by tokenizer.ggml.merges.
 * Pre-tokenization and normalization follow the model's own tokenizer.json pipeline, carried into
 * the GGUF by the converter (tools/convert_tokenizer.c) as JSON strings under tokenizer.mlxr.*; GGUF
 * files made by llama.cpp that only name tokenizer.ggml.pre are mapped through a table of
 * llama.cpp's pre-tokenizer names to the equivalent pipeline. Special and added tokens are matched
 * in text before the pipeline runs (unless parse_special is false).
 *
 * A tokenizer is immutable after load: any thread may encode/decode concurrently. The streaming
 * detokenizer (mlxr_detok) is per stream and owned by its caller.
 */
#ifndef MLXR_RUNTIME_TOKENIZER_H
#define MLXR_RUNTIME_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/formats/gguf.h"

typedef struct mlxr_tokenizer mlxr_tokenizer;

/* Load from GGUF metadata (tokenizer.* keys). The tokenizer copies what it needs: the gguf may be
 * closed afterwards. */
int mlxr_tokenizer_load_gguf(const mlxr_gguf *g, mlxr_tokenizer **out, char *err, size_t err_len);
void mlxr_tokenizer_free(mlxr_tokenizer *t);

int32_t mlxr_tokenizer_n_vocab(const mlxr_tokenizer *t);
int32_t mlxr_tokenizer_bos(const mlxr_tokenizer *t); /* -1 if none */
int32_t mlxr_tokenizer_eos(const mlxr_tokenizer *t); /* -1 if none */
/* True for tokens that end generation (eos, eot, eom, and other end-of-generation controls). */
bool mlxr_tokenizer_is_eog(const mlxr_tokenizer *t, int32_t id);
/* True for control tokens (token_type 3), which decode to nothing unless asked. */
bool mlxr_tokenizer_is_control(const mlxr_tokenizer *t, int32_t id);
/* Token text as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"); NULL if out of range. */
const char *mlxr_tokenizer_token_text(const mlxr_tokenizer *t, int32_t id);
/* Id of an exact vocabulary string, -1 if none. */
int32_t mlxr_tokenizer_find(const mlxr_tokenizer *t, const char *text, size_t len);

typedef struct mlxr_tokenize_params {
  bool add_special;   /* add BOS/EOS as the model's add_bos_token / add_eos_token say */
  bool parse_special; /* recognize special/added token text in the input */
} mlxr_tokenize_params;

/* Encode len bytes of text (any bytes; invalid UTF-8 is handled as the reference does). On
 * success *ids is a malloc'd array of *n_ids ids that the caller frees. */
int mlxr_tokenizer_encode(const mlxr_tokenizer *t, const char *text, size_t len,
                          mlxr_tokenize_params params, int32_t **ids, size_t *n_ids);

/* Bytes that token id contributes to the text (byte-level decoding, ▁ -> space, <0xXX> -> byte).
 * Control tokens give their text only if render_special. Writes at most cap bytes; returns the
 * full length (which may exceed cap), or a negative status for a bad id. */
int mlxr_tokenizer_token_bytes(const mlxr_tokenizer *t, int32_t id, bool render_special,
                               char *buf, size_t cap);

/* Decode a whole sequence the way the reference decoder does (including stripping the space
 * prefix that SentencePiece adds). On success *text is malloc'd and NUL-terminated. */
int mlxr_tokenizer_decode(const mlxr_tokenizer *t, const int32_t *ids, size_t n_ids,
                          bool render_special, char **text, size_t *len);

/* Streaming detokenizer: push ids one at a time, get back only complete UTF-8 text. */
typedef struct mlxr_detok {
  const mlxr_tokenizer *tok;
  bool render_special;
  bool at_start;       /* no text emitted yet (for stripping the SentencePiece space prefix) */
  size_t n_pending;    /* bytes held back: an incomplete UTF-8 sequence */
  char pending[8];
} mlxr_detok;

void mlxr_detok_init(mlxr_detok *d, const mlxr_tokenizer *t, bool render_special);
/* Appends the newly complete text to out (capacity cap, must be >= 256 + the longest token);
 * returns the number of bytes written, or a negative status. */
int mlxr_detok_push(mlxr_detok *d, int32_t id, char *out, size_t cap);
/* Flushes held-back bytes of an incomplete sequence as U+FFFD; returns bytes written. */
int mlxr_detok_flush(mlxr_detok *d, char *out, size_t cap);

#endif
