/*
 * grammar.h: GBNF grammars for constrained decoding, an incremental matcher over UTF-8 bytes, a
 * per-tokenizer table of token bytes, JSON Schema -> GBNF conversion and a JSON Schema validator
 * for what a grammar cannot enforce.
 *
 * The grammar language is llama.cpp's GBNF (grammars/README.md): `name ::= alternatives` rules,
 * "literals" with \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH escapes, [character classes] with ranges
 * and ^ negation, `.` (any character), ( groups ), and the postfix operators * + ? {m} {m,} {m,n};
 * `#` starts a comment; a rule ends at a newline outside parentheses. Parsing rewrites repetitions
 * into generated right-recursive rules and rejects undefined rules and left recursion (which would
 * make matching loop).
 *
 * The matcher keeps the set of parse stacks (llama.cpp's design): each stack is a list of grammar
 * positions, the top being the next terminal (a character class) to match; an empty stack means
 * the input so far is a complete sentence. Feeding a code point keeps the stacks whose top matches
 * it, advances them past the terminal and expands rule references until every stack again ends at
 * a terminal. Bytes are decoded as strict UTF-8 (overlong forms, surrogates and values past
 * U+10FFFF are rejected); a token that ends inside a code point is accepted when some stack's top
 * can match a code point that starts with those bytes. Stack sets live in buffers the matcher owns
 * and reuses (grown only when a set is larger than any before), so matching allocates nothing in
 * steady state; sets are deduplicated by hashing. Limits (stack depth, stacks per set) turn
 * pathological grammars into rejections, never into unbounded memory.
 *
 * Ownership: a grammar is immutable after parsing and may be shared by matchers (and threads);
 * a matcher borrows its grammar (which must outlive it) and belongs to one thread at a time.
 */
#ifndef MLXR_RUNTIME_GRAMMAR_H
#define MLXR_RUNTIME_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime/tokenizer/tokenizer.h"

typedef struct mlxr_grammar mlxr_grammar;

/* Parse GBNF text of len bytes; root names the start rule ("root" if NULL). */
int mlxr_grammar_parse(const char *text, size_t len, const char *root, mlxr_grammar **out,
                       char *err, size_t err_len);
void mlxr_grammar_free(mlxr_grammar *g);
int32_t mlxr_grammar_n_rules(const mlxr_grammar *g);

typedef struct mlxr_grammar_matcher mlxr_grammar_matcher;

/* A matcher at the start of the grammar; NULL when out of memory. */
mlxr_grammar_matcher *mlxr_grammar_matcher_new(const mlxr_grammar *g);
void mlxr_grammar_matcher_free(mlxr_grammar_matcher *m);
void mlxr_grammar_matcher_reset(mlxr_grammar_matcher *m);

/* Would the grammar accept these n bytes next? The state is unchanged. */
bool mlxr_grammar_matcher_try(mlxr_grammar_matcher *m, const uint8_t *bytes, size_t n);
/* Consume n bytes if the grammar accepts them (true); otherwise nothing changes (false). */
bool mlxr_grammar_matcher_accept(mlxr_grammar_matcher *m, const uint8_t *bytes, size_t n);
/* The bytes consumed so far form a complete sentence of the grammar. */
bool mlxr_grammar_matcher_is_complete(const mlxr_grammar_matcher *m);
/* Some further byte can be accepted. */
bool mlxr_grammar_matcher_can_continue(const mlxr_grammar_matcher *m);
/* Bit b of mask[b / 8] (bit b % 8) set iff byte b alone would be accepted next. */
void mlxr_grammar_matcher_first_bytes(mlxr_grammar_matcher *m, uint8_t mask[32]);

/* Every token's bytes (as mlxr_tokenizer_token_bytes gives them, control tokens empty), computed
 * once per tokenizer and shared read-only by all requests. */
typedef struct mlxr_grammar_vocab mlxr_grammar_vocab;
int mlxr_grammar_vocab_new(const mlxr_tokenizer *t, mlxr_grammar_vocab **out, char *err, size_t err_len);
void mlxr_grammar_vocab_free(mlxr_grammar_vocab *v);
int32_t mlxr_grammar_vocab_size(const mlxr_grammar_vocab *v);
/* The bytes of token id (len 0 for control tokens); borrowed for the table's lifetime. */
const uint8_t *mlxr_grammar_vocab_bytes(const mlxr_grammar_vocab *v, int32_t id, size_t *len);

/* May non-empty token id come next? first_mask from mlxr_grammar_matcher_first_bytes for the
 * current state (a cheap pre-check), or NULL. Empty tokens are never allowed. */
bool mlxr_grammar_matcher_allows_token(mlxr_grammar_matcher *m, const mlxr_grammar_vocab *v,
                                       int32_t id, const uint8_t *first_mask);

/* ---- JSON (json_schema.c) ---- */

typedef enum mlxr_json_grammar_kind {
  MLXR_JSON_GRAMMAR_OBJECT, /* generation: a JSON object, limited whitespace (json_object mode) */
  MLXR_JSON_GRAMMAR_VALUE,  /* generation: any JSON value, limited whitespace */
  MLXR_JSON_GRAMMAR_EXACT,  /* exactly RFC 8259 JSON text: any value, any whitespace around tokens */
} mlxr_json_grammar_kind;

/* GBNF text of a generic JSON grammar (malloc'd, NUL-terminated; the caller frees). NULL: no memory. */
char *mlxr_json_grammar_gbnf(mlxr_json_grammar_kind kind);

/* JSON Schema -> GBNF (json_schema*.c; what is supported is listed at the top of json_schema.c). */
typedef struct mlxr_json_schema_params {
  bool spec_defaults; /* false (generation): narrowed where a model should not wander (no undeclared
                         members unless additionalProperties allows them, digit runs and whitespace
                         capped, a type inferred from the keywords); true: JSON Schema's defaults, so
                         that every valid instance (keys in declared order) is accepted */
  int draft;          /* 4, 6, 7, 2019 or 2020; 0: from "$schema" (2020-12 when absent) */
} mlxr_json_schema_params;

mlxr_json_schema_params mlxr_json_schema_default_params(void);
/* The draft a schema declares with "$schema" (2020 when it declares none). */
int mlxr_json_schema_draft(const void *schema_cjson);

/* Convert a JSON schema (a parsed cJSON object or boolean, passed as const void * so that this
 * header needs no cJSON) into GBNF text (malloc'd into *gbnf; the caller frees). post (may be
 * NULL) receives the comma-separated keywords the grammar does not fully enforce ("" when it is
 * exact): the finished output must then go through mlxr_json_schema_validate. Errors:
 * MLXR_ERR_INVALID for a malformed or unsatisfiable schema, MLXR_ERR_UNSUPPORTED for what we
 * cannot even validate (remote $ref, $dynamicRef, unevaluated*), with a message naming it. */
int mlxr_json_schema_convert(const void *schema_cjson, const mlxr_json_schema_params *params, char **gbnf,
                             char *post, size_t post_len, char *err, size_t err_len);
/* The same with the default (generation) parameters, post discarded. */
int mlxr_json_schema_to_gbnf(const void *schema_cjson, char **gbnf, char *err, size_t err_len);
/* The same from schema text. */
int mlxr_json_schema_text_to_gbnf(const char *schema, size_t len, char **gbnf, char *err, size_t err_len);

/* Validate a parsed JSON instance against a schema (draft 0: from "$schema"). MLXR_OK: valid;
 * MLXR_ERR_INVALID: not, and why says where and what (JSON pointer first); other codes: the schema
 * could not be applied (an unresolvable $ref, a pattern PCRE2 cannot compile). Any thread. */
int mlxr_json_schema_validate(const void *schema_cjson, int draft, const void *instance_cjson, char *why,
                              size_t why_len);
/* The same from texts (the instance must be one JSON value). */
int mlxr_json_schema_validate_text(const char *schema, size_t schema_len, const char *text, size_t len, char *why,
                                   size_t why_len);

#endif
