/*
 * modelfile.h: Ollama's Modelfile, read and written (`mlxr create -f Modelfile`, /api/create's
 * older `modelfile` field, `mlxr show --modelfile`).
 *
 * The format: one instruction per line, `INSTRUCTION arguments`, instruction names in any case,
 * `#` starts a comment line, blank lines ignored, a UTF-8 byte-order mark ignored. Arguments run to
 * the end of the line, trimmed; an argument that starts with `"` runs to the line that ends with the
 * closing `"`, one that starts with `"""` to the line that ends with `"""` (so both may span lines;
 * the quotes are removed, what is between them is kept as written). Instructions:
 *   FROM <model name or path>            required, once
 *   PARAMETER <name> <value>             Ollama's options (temperature, num_ctx, stop, ...), typed:
 *                                        a number where Ollama wants one; `stop` may repeat
 *   TEMPLATE, SYSTEM, ADAPTER, DRAFT, REQUIRES, RENDERER, PARSER <text>      once each
 *   LICENSE <text>                       may repeat
 *   MESSAGE <system|user|assistant> <text>   may repeat
 * Stricter than Ollama where Ollama silently keeps the last of two: a repeated single-valued
 * instruction or parameter, an unknown instruction or parameter, a value of the wrong type or a
 * message role other than the three are errors that name the line. Ollama's deprecated
 * parameters (mirostat, use_mlock, ...) are accepted and dropped, as Ollama does with a warning.
 */
#ifndef MLXR_REGISTRY_MODELFILE_H
#define MLXR_REGISTRY_MODELFILE_H

#include <stddef.h>

typedef struct mlxr_modelfile_message {
  char *role; /* "system", "user" or "assistant" */
  char *content;
} mlxr_modelfile_message;

typedef struct mlxr_modelfile {
  char *from;     /* never NULL after a successful parse */
  char *template_text, *system, *adapter, *draft, *requires, *renderer, *parser; /* NULL: absent */
  char **licenses;
  int n_licenses;
  mlxr_modelfile_message *messages;
  int n_messages;
  /* PARAMETER lines as a cJSON object (cJSON *), typed as Ollama's /api/create `parameters`:
   * numbers, booleans, and `stop` as an array of strings; empty object when none. */
  void *parameters;
  int n_deprecated; /* deprecated parameters that were dropped */
} mlxr_modelfile;

/* Parse text[0..len). On success *out holds the result (free with mlxr_modelfile_free); on failure
 * it is zeroed and err says what and on which line ("line 3: ..."). MLXR_ERR_INVALID for a bad
 * Modelfile, MLXR_ERR_RANGE for an integer parameter beyond 2^53 (not exact as a JSON number),
 * MLXR_ERR_NOMEM. */
int mlxr_modelfile_parse(const char *text, size_t len, mlxr_modelfile *out, char *err, size_t err_len);
void mlxr_modelfile_free(mlxr_modelfile *mf);

/* The Modelfile text of mf (malloc'ed, NULL when out of memory), in Ollama's order: FROM, TEMPLATE,
 * SYSTEM, ADAPTER, DRAFT, REQUIRES, RENDERER, PARSER, PARAMETER lines, LICENSE, MESSAGE. Values are
 * quoted when they need it ("..." or """..."""), so parsing the text gives mf back. A value that
 * cannot be written so that it reads back (one holding both `"""` and a line ending in `"`)
 * makes it return NULL with *err_out set to MLXR_ERR_UNSUPPORTED (err_out may be NULL). */
char *mlxr_modelfile_format(const mlxr_modelfile *mf, int *err_out);

#endif
