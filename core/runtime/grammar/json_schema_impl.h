/*
 * json_schema_impl.h: what the parts of the JSON Schema -> GBNF converter share (not for other
 * modules). The converter is split by topic:
 *
 *   json_schema.c         the walk over a schema: types, objects, arrays, combinators, $ref,
 *                         const/enum, allOf merging; the public entry points
 *   json_schema_num.c     integer and number bounds as digit-range rules, multipleOf
 *   json_schema_regex.c   `pattern`: an ECMA regex subset translated into rules
 *   json_schema_format.c  `format`: date, time, date-time, uuid, email, uri, ipv4, ipv6, hostname
 *   json_schema_valid.c   the validator for what a grammar cannot enforce (run on finished text)
 *
 * Every schema node becomes a rule "rN" written into conv.out; gen() returns the rule's number,
 * a shared primitive (negative P_ ids, written once at the end), JS_EMPTY when the schema matches
 * nothing, or -1 after an error (conv.rc, conv.err). Rule bodies are GBNF (grammar.h) over the
 * JSON text, so a string's rules match its JSON encoding (quotes and escapes included).
 *
 * Exactness: when the grammar accepts values the schema refuses (a keyword it cannot express),
 * js_post() records the keyword in conv.post; the caller must then run the validator on the
 * finished text. When the grammar accepts fewer values than the schema allows, nothing is
 * recorded (generation only ever needs some valid output); the narrowings are listed at the top
 * of json_schema.c. One thread per conversion; nothing global.
 */
#ifndef MLXR_RUNTIME_GRAMMAR_JSON_SCHEMA_IMPL_H
#define MLXR_RUNTIME_GRAMMAR_JSON_SCHEMA_IMPL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/runtime/grammar/grammar.h"

#define JS_MAX_DEPTH 64       /* schema nesting */
#define JS_MAX_REPEAT 2000    /* largest {m,n} bound the GBNF parser takes */
#define JS_MAX_DIGITS 400     /* decimal digits of a bound (a double has at most 309 + 17) */
#define JS_GEN_DIGITS 16      /* generation mode: digits of an unbounded integer part or fraction */

typedef struct js_sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} js_sbuf;

void js_sb_add(js_sbuf *b, const char *s, size_t len);
void js_sb_str(js_sbuf *b, const char *s);
void js_sb_fmt(js_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A GBNF string literal matching exactly the bytes s[0..len). */
void js_sb_literal(js_sbuf *b, const char *s, size_t len);
/* A code point as it may appear inside a GBNF [class] or "literal" (escaped where needed). */
void js_sb_cp(js_sbuf *b, unsigned cp);

/* Shared primitives (rules appended once at the end of every converted grammar). */
enum {
  JS_EMPTY = -3, /* the schema matches nothing */
  P_VALUE = -20, P_OBJECT, P_ARRAY, P_STRING, P_NUMBER, P_INTEGER, P_BOOLEAN, P_NULL,
  P_CHAR,        /* one character of a JSON string, in any JSON spelling */
  P_CHAR1,       /* one code point (length counting): no \u escapes of surrogates */
  P_LAST
};

typedef struct js_ref_memo {
  char *ref;
  int rule;
} js_ref_memo;

typedef struct js_conv {
  js_sbuf out;           /* the rules written so far */
  const cJSON *root;     /* the whole schema ($ref targets) */
  bool spec;             /* mlxr_json_schema_params.spec_defaults */
  int draft;             /* 4, 6, 7, 2019 or 2020 */
  int n_rules;
  js_ref_memo *memo;     /* [n_memo] $ref -> rule, so recursive references name one rule */
  int n_memo, cap_memo;
  cJSON *owned;          /* schemas made while converting (allOf merges), freed at the end */
  char *post;            /* caller's buffer: keywords left to the validator, comma-separated */
  size_t post_len;
  char zeros[JS_MAX_DIGITS + 1], nines[JS_MAX_DIGITS + 1]; /* digit-range helpers */
  int rc;
  char *err;
  size_t err_len;
} js_conv;

int js_fail(js_conv *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Note that keyword kw is left to the validator (deduplicated). */
void js_post(js_conv *c, const char *kw);
/* The name of rule r (rN or a primitive's name) into b. */
void js_sb_rule(js_sbuf *b, int r);
/* Starts "rN ::= " for a fresh rule and returns N. */
int js_begin_rule(js_conv *c);
int js_new_rule(js_conv *c);
/* Appends the canonical JSON spelling of code point cp inside a string, as a GBNF literal. */
void js_sb_json_char(js_sbuf *b, unsigned cp);

/* json_schema_num.c: type integer / number with minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum (draft-4 booleans or numbers) and multipleOf. */
int js_gen_integer(js_conv *c, const cJSON *s);
int js_gen_number(js_conv *c, const cJSON *s);
/* True if the schema has numeric keywords (bounds, multipleOf). */
bool js_has_numeric_keywords(const cJSON *s);

/* json_schema_regex.c: the string rule for a `pattern` (unanchored unless ^/$ say so); -1 with
 * *unsupported set (nothing written, no error) when the regex uses what we do not translate
 * (lookaround, backreferences, \b ...); -1 with c->rc set on a syntax error. */
int js_gen_pattern(js_conv *c, const char *re, bool *unsupported);

/* json_schema_format.c: the string rule for a format, or -2 for a format we do not know (an
 * annotation then, as JSON Schema says). */
int js_gen_format(js_conv *c, const char *format);
/* GBNF text "root ::= ..." that matches the JSON text of strings in the format (the validator
 * checks formats with it); NULL for an unknown format. Malloc'd. */
char *js_format_gbnf(const char *format);

/* json_schema.c: the target of a "#/..." JSON pointer within root; NULL if it names nothing. */
const cJSON *js_resolve_pointer(const cJSON *root, const char *ref);
/* json_schema_valid.c: validate instance against schema (a node of root). */
int js_validate_node(const cJSON *root, const cJSON *schema, const cJSON *instance, int draft, char *why,
                     size_t why_len);

#endif
