/*
 * template.h: chat templates, a sandboxed interpreter for the subset of Jinja2 that Hugging Face
 * chat templates use (in practice: all of Jinja2's expression language, for/if/set/macro/call/
 * filter/raw/with blocks, the builtin filters and tests), with Hugging Face's settings:
 * trim_blocks, lstrip_blocks, loop controls (break/continue), an immutable sandbox (lists and dicts
 * cannot be changed; namespace() objects can), a tojson filter that is Python's json.dumps
 * (ensure_ascii=False), and the globals raise_exception(msg) and strftime_now(fmt).
 *
 * Compile once with mlxr_template_new(), render many times. A compiled template is immutable: any
 * number of threads may render it at once. Rendering never touches files or the environment, and is
 * bounded by mlxr_template_params (output size, total loop iterations and calls, call/expression
 * depth), so a hostile template fails with an error instead of hanging or exhausting memory.
 *
 * Errors (syntax errors, raise_exception, type errors, unknown filters, undefined attributes of
 * undefined values, limits) return a negative mlxr_status with a message in err.
 */
#ifndef MLXR_RUNTIME_TEMPLATE_H
#define MLXR_RUNTIME_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

typedef struct mlxr_template mlxr_template;

typedef struct mlxr_template_params {
  size_t max_output_bytes; /* cap on the rendered text and on any one string or list built */
  uint64_t max_steps;      /* cap on loop iterations + macro/function calls, whole render */
  int max_depth;           /* cap on nested macro calls and expression evaluation depth */
  /* strftime_now() uses this broken-down local time if non-NULL, else the real clock. */
  const struct tm *fixed_time;
} mlxr_template_params;

/* Defaults: 64 MiB output, 2M steps, depth 400, real clock. */
void mlxr_template_default_params(mlxr_template_params *p);

/* Compile len bytes of template source. On success *out owns a template to free with
 * mlxr_template_free. Syntax errors give MLXR_ERR_FORMAT and a message with the line number. */
int mlxr_template_new(const char *src, size_t len, mlxr_template **out, char *err, size_t err_len);
void mlxr_template_free(mlxr_template *t);

/* Render with the variables of a JSON object (messages, tools, add_generation_prompt, bos_token,
 * ... any keys). JSON numbers without '.', 'e' or 'E' are ints, others floats — but cJSON does not
 * keep the spelling, so here an integral number is an int; use mlxr_template_render_json to keep
 * 1.0 a float. params may be NULL (defaults). On success *out is a malloc'd NUL-terminated string
 * of *out_len bytes (out_len may be NULL) that the caller frees. */
int mlxr_template_render(const mlxr_template *t, const cJSON *vars,
                         const mlxr_template_params *params, char **out, size_t *out_len,
                         char *err, size_t err_len);

/* Same, with the variables as JSON text (an object), parsed exactly as Python's json.loads does
 * (ints stay ints, 1.0 stays a float, key order kept, later duplicate keys win). */
int mlxr_template_render_json(const mlxr_template *t, const char *json, size_t json_len,
                              const mlxr_template_params *params, char **out, size_t *out_len,
                              char *err, size_t err_len);

#endif
