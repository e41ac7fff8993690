/*
 * tokenizer_impl.h: the insides of mlxr_tokenizer, shared by the files of core/runtime/tokenizer/.
 *
 * The tokenizer is one immutable struct built at load (vocab.c) from GGUF metadata:
 *   - the vocabulary (token texts, scores, types) with a hash index text -> id;
 *   - BPE merges as a hash (left id, right id) -> rank (gpt2 files and llama files that carry
 *     merges); without merges the "llama" kind merges by token score like SentencePiece;
 *   - the HF pipeline: normalizer (normalize.c), pre-tokenizer (pretokenize.c), model options
 *     (bpe.c), decoder (detok.c), parsed from the tokenizer.mlxr.* JSON keys, or from the
 *     equivalent JSON that pre_names.c gives for a llama.cpp tokenizer.ggml.pre name;
 *   - the added tokens, in a byte trie for leftmost-longest matching (special.c).
 * Text travels between stages as arrays of UTF-8 pieces (mlxr_tok_pieces), each owning its bytes.
 * Nothing here is mutated after load, so encode/decode may run concurrently.
 */
#ifndef MLXR_RUNTIME_TOKENIZER_IMPL_H
#define MLXR_RUNTIME_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime/tokenizer/tokenizer.h"

struct cJSON;

enum {
  MLXR_TOK_TYPE_NORMAL = 1,
  MLXR_TOK_TYPE_UNKNOWN = 2,
  MLXR_TOK_TYPE_CONTROL = 3,
  MLXR_TOK_TYPE_USER = 4,
  MLXR_TOK_TYPE_UNUSED = 5,
  MLXR_TOK_TYPE_BYTE = 6,
};

/* ---- growable list of owned strings ---- */
typedef struct mlxr_tok_piece {
  char *s;   /* malloc'd, NUL-terminated */
  size_t n;  /* byte length */
} mlxr_tok_piece;

typedef struct mlxr_tok_pieces {
  mlxr_tok_piece *v;
  size_t n, cap;
} mlxr_tok_pieces;

int mlxr_tok_pieces_push(mlxr_tok_pieces *p, const char *s, size_t n);
void mlxr_tok_pieces_free(mlxr_tok_pieces *p);

/* ---- byte buffer ---- */
typedef struct mlxr_tok_buf {
  char *s;
  size_t n, cap;
} mlxr_tok_buf;

int mlxr_tok_buf_add(mlxr_tok_buf *b, const void *s, size_t n);
int mlxr_tok_buf_addc(mlxr_tok_buf *b, char c);

/* ---- UTF-8 helpers (vocab.c) ---- */
/* Length of the valid UTF-8 sequence at s[0..n), 0 if s does not start one (invalid or cut). */
size_t mlxr_tok_utf8_valid_len(const unsigned char *s, size_t n);
/* Length of the maximal ill-formed subpart at s (WHATWG/Unicode "maximal subpart"), >= 1; sets
 * *truncated if it is a valid prefix cut by the end of the input. */
size_t mlxr_tok_utf8_bad_len(const unsigned char *s, size_t n, bool *truncated);
/* Copy s to b, each maximal ill-formed subpart replaced by U+FFFD (like TextDecoder). */
int mlxr_tok_utf8_lossy(mlxr_tok_buf *b, const char *s, size_t n);
/* Encode code point cp as UTF-8 into out (4 bytes); returns length. */
size_t mlxr_tok_utf8_put(uint32_t cp, char *out);
/* Decode one code point of valid UTF-8; returns its length. */
size_t mlxr_tok_utf8_get(const char *s, size_t n, uint32_t *cp);

/* ---- normalizer (normalize.c) ---- */
typedef struct mlxr_tok_norm mlxr_tok_norm;
int mlxr_tok_norm_parse(const struct cJSON *j, mlxr_tok_norm **out, char *err, size_t err_len);
void mlxr_tok_norm_free(mlxr_tok_norm *n);
/* Normalize s into *out (malloc'd). A NULL normalizer copies. */
int mlxr_tok_norm_apply(const mlxr_tok_norm *n, const char *s, size_t len, mlxr_tok_buf *out);

/* ---- pre-tokenizer (pretokenize.c) ---- */
typedef struct mlxr_tok_pre mlxr_tok_pre;
int mlxr_tok_pre_parse(const struct cJSON *j, mlxr_tok_pre **out, char *err, size_t err_len);
void mlxr_tok_pre_free(mlxr_tok_pre *p);
/* Split s into pieces appended to out. first_section: the text begins at offset 0 of the input
 * (Metaspace prepend_scheme "first"). A NULL pre-tokenizer gives one piece. */
int mlxr_tok_pre_apply(const mlxr_tok_pre *p, const char *s, size_t len, bool first_section,
                       mlxr_tok_pieces *out);
/* Compile a HF regex with PCRE2 (UTF|UCP), rewriting the constructs that the reference treats
 * differently (case-insensitive contractions, JS \s). */
pcre2_code *mlxr_tok_regex_compile(const char *pattern, size_t len, char *err, size_t err_len);
/* The GPT-2 byte -> code point map. */
uint32_t mlxr_tok_byte_to_cp(uint8_t b);
/* Inverse: code point -> byte, -1 if cp is not in the map. */
int mlxr_tok_cp_to_byte(uint32_t cp);

/* ---- decoder (detok.c) ---- */
typedef struct mlxr_tok_dec mlxr_tok_dec;
int mlxr_tok_dec_parse(const struct cJSON *j, mlxr_tok_dec **out, char *err, size_t err_len);
void mlxr_tok_dec_free(mlxr_tok_dec *d);

/* ---- added tokens (special.c) ---- */
typedef struct mlxr_tok_added {
  int32_t id;
  char *content;
  size_t len;
  bool special, lstrip, rstrip, single_word, normalized;
} mlxr_tok_added;

typedef struct mlxr_tok_trie mlxr_tok_trie;
int mlxr_tok_trie_build(const mlxr_tok_added *a, size_t n, mlxr_tok_trie **out);
void mlxr_tok_trie_free(mlxr_tok_trie *t);

/* A section of the input: either an added token (id >= 0) or text [off, off+len). */
typedef struct mlxr_tok_section {
  int32_t id;  /* added token id, or -1 for text */
  size_t off, len;
} mlxr_tok_section;

int mlxr_tok_split_added(const mlxr_tokenizer *t, const char *s, size_t len, bool parse_special,
                         mlxr_tok_section **out, size_t *n_out);

/* ---- BPE model (bpe.c) ---- */
typedef struct mlxr_tok_ids {
  int32_t *v;
  size_t n, cap;
} mlxr_tok_ids;
int mlxr_tok_ids_push(mlxr_tok_ids *ids, int32_t id);
/* Encode one pre-tokenized word (already byte-level mapped / ▁-replaced) and append ids. */
int mlxr_tok_bpe_word(const mlxr_tokenizer *t, const char *w, size_t n, mlxr_tok_ids *out);
int mlxr_tok_bpe_build_merges(mlxr_tokenizer *t, const mlxr_gguf *g, char *err, size_t err_len);

/* ---- pre_names.c ---- */
/* A llama.cpp tokenizer.ggml.pre name and the regexes its BPE pre-tokenizer splits with
 * (applied in order, each keeping matches and the text between them). */
typedef struct mlxr_tok_pre_name {
  const char *name;
  const char *const *regexes; /* NULL-terminated */
  bool ignore_merges;
} mlxr_tok_pre_name;
/* NULL for an unknown name. */
const mlxr_tok_pre_name *mlxr_tok_pre_name_find(const char *name);
/* The equivalent tokenizer.json pre_tokenizer (Sequence of Split Isolated + ByteLevel). */
struct cJSON *mlxr_tok_pre_name_json(const mlxr_tok_pre_name *pn);
/* Reverse: the first name whose regex list equals regexes[0..n), NULL if none. */
const char *mlxr_tok_pre_name_match(const char *const *regexes, size_t n);

/* ---- the tokenizer ---- */
typedef enum mlxr_tok_kind { MLXR_TOK_KIND_GPT2 = 0, MLXR_TOK_KIND_LLAMA = 1 } mlxr_tok_kind;

struct mlxr_tokenizer {
  mlxr_tok_kind kind;
  int32_t n_vocab;
  char **text;        /* [n_vocab] token texts, NUL-terminated, into one arena */
  uint32_t *text_len; /* [n_vocab] */
  char *arena;
  float *score;       /* [n_vocab] or NULL */
  uint8_t *type;      /* [n_vocab] token types (MLXR_TOK_TYPE_*) */
  uint8_t *eog;       /* [n_vocab] 1 for end-of-generation tokens */
  int32_t *hash;      /* [hash_cap] id + 1, 0 = empty: vocab text -> id */
  size_t hash_cap;

  /* merges: open addressing over ((uint64)left << 32 | right) -> rank */
  uint64_t *merge_key;  /* [merge_cap], UINT64_MAX = empty */
  int32_t *merge_rank;  /* [merge_cap] */
  int32_t *merge_res;   /* [merge_cap] id of the merged token */
  size_t merge_cap;
  size_t n_merges;

  int32_t bos, eos, unk, pad;
  bool add_bos, add_eos;
  int32_t max_token_len;

  /* model options */
  bool byte_fallback, ignore_merges, fuse_unk;
  char *cont_prefix;   /* continuing_subword_prefix or NULL */
  char *eow_suffix;    /* end_of_word_suffix or NULL */

  mlxr_tok_norm *norm;
  mlxr_tok_pre *pre;
  mlxr_tok_dec *dec;

  mlxr_tok_added *added;
  size_t n_added;
  mlxr_tok_trie *trie;       /* all added tokens */
  mlxr_tok_trie *trie_user;  /* non-special added tokens (parse_special = false) */
  int32_t *added_index;      /* [n_vocab] index into added, -1 if not an added token */
};

/* Decode helpers used by decode and the streaming detokenizer. */
bool mlxr_tok_is_added(const mlxr_tokenizer *t, int32_t id);

#endif
