/*
 * fuzz_modelfile.c: libFuzzer harness for the Modelfile reader and writer
 * (daemon/registry/modelfile.c): `mlxr create -f FILE` and /api/create's `modelfile` field take
 * Modelfiles from users and requests.
 *
 * Input: Modelfile text. Properties: parsing succeeds (with a FROM) or fails with a negative status
 * and a message; a parsed Modelfile written back out either reads back to the same fields (FROM,
 * every text instruction, licenses, messages, parameters) or is refused as unwritable with
 * MLXR_ERR_UNSUPPORTED; no crash, leak or hang. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_modelfile/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "daemon/registry/modelfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void same_or_abort(const mlxr_modelfile *a, const mlxr_modelfile *b) {
  if (!same_text(a->from, b->from) || !same_text(a->template_text, b->template_text) ||
      !same_text(a->system, b->system) || !same_text(a->adapter, b->adapter) || !same_text(a->draft, b->draft) ||
      !same_text(a->requires, b->requires) || !same_text(a->renderer, b->renderer) ||
      !same_text(a->parser, b->parser) || a->n_licenses != b->n_licenses || a->n_messages != b->n_messages ||
      !cJSON_Compare(a->parameters, b->parameters, 1))
    abort();
  for (int i = 0; i < a->n_licenses; i++)
    if (!same_text(a->licenses[i], b->licenses[i])) abort();
  for (int i = 0; i < a->n_messages; i++)
    if (!same_text(a->messages[i].role, b->messages[i].role) ||
        !same_text(a->messages[i].content, b->messages[i].content))
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlxr_modelfile mf;
  char err[512] = "";
  int rc = mlxr_modelfile_parse((const char *)data, size, &mf, err, sizeof err);
  if (rc != MLXR_OK) {
    if (rc > 0 || err[0] == '\0') abort();
    return 0;
  }
  if (!mf.from) abort();
  int ferr = 0;
  char *text = mlxr_modelfile_format(&mf, &ferr);
  if (!text) {
    if (ferr != MLXR_ERR_UNSUPPORTED && ferr != MLXR_ERR_NOMEM) abort();
  } else {
    mlxr_modelfile back;
    if (mlxr_modelfile_parse(text, strlen(text), &back, err, sizeof err) != MLXR_OK) abort();
    same_or_abort(&mf, &back);
    mlxr_modelfile_free(&back);
    free(text);
  }
  mlxr_modelfile_free(&mf);
  return 0;
}
