/*
 * grammar_impl.h: the compiled grammar shared by the parser (grammar_parse.c) and the matcher
 * (grammar_match.c). Not for other modules.
 *
 * A compiled grammar is one flat array of elements. Rule r's alternatives start at
 * elems[rule_start[r]]: each alternative is a run of elements, alternatives are separated by an
 * ALT element and the rule ends with END. A character class is a CHAR or CHAR_NOT element
 * followed by optional RNG_UPPER (makes the previous element a range lo..hi) and CHAR_ALT
 * elements (more characters of the same class); CHAR_ANY matches any code point.
 */
#ifndef MLXR_RUNTIME_GRAMMAR_IMPL_H
#define MLXR_RUNTIME_GRAMMAR_IMPL_H

#include <stdint.h>

#include "core/runtime/grammar/grammar.h"

typedef enum mlxr_gtype {
  MLXR_GT_END = 0,       /* end of a rule */
  MLXR_GT_ALT = 1,       /* start of the next alternative */
  MLXR_GT_RULE_REF = 2,  /* value: rule id */
  MLXR_GT_CHAR = 3,      /* value: code point (first of a positive class) */
  MLXR_GT_CHAR_NOT = 4,  /* value: code point (first of a negated class) */
  MLXR_GT_RNG_UPPER = 5, /* value: upper bound of the range started by the previous element */
  MLXR_GT_CHAR_ALT = 6,  /* value: another code point of the class */
  MLXR_GT_CHAR_ANY = 7,  /* any code point */
} mlxr_gtype;

typedef struct mlxr_gelem {
  uint32_t type;  /* mlxr_gtype */
  uint32_t value; /* code point or rule id */
} mlxr_gelem;

struct mlxr_grammar {
  mlxr_gelem *elems;    /* [n_elems] all rules, flattened */
  uint32_t n_elems;
  uint32_t *rule_start; /* [n_rules] index of each rule's first element */
  uint32_t n_rules;
  uint32_t root;        /* start rule id */
};

#endif
