/*
 * test_registry_modelfile.c: the Modelfile reader and writer (daemon/registry/modelfile.c) against
 * expectations written by hand from Ollama's Modelfile documentation (docs/modelfile.md: the
 * instructions, the quoting with " and """, PARAMETER types, MESSAGE roles), not from the code's
 * output: a complete Modelfile field by field, line endings and a byte-order mark, every refusal
 * with its line number and reason, and write-then-read round trips of values that need quoting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "daemon/registry/modelfile.h"
#include "tests/unit/check.h"

static bool same_params(const mlxr_modelfile *mf, const char *want_json) {
  cJSON *want = cJSON_Parse(want_json);
  const bool same = want && cJSON_Compare(mf->parameters, want, true);
  if (!same) {
    char *got = cJSON_PrintUnformatted(mf->parameters);
    fprintf(stderr, "  parameters %s, want %s\n", got ? got : "?", want_json);
    free(got);
  }
  cJSON_Delete(want);
  return same;
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static void full_modelfile(void) {
  const char *text =
      "# a Mario assistant\n"
      "FROM llama3.2\n"
      "\n"
      "PARAMETER temperature 0.7\n"
      "PARAMETER num_ctx 4096\n"
      "  PARAMETER stop \"<|im_end|>\"\n"
      "PARAMETER stop <|eot_id|>\n"
      "PARAMETER use_mmap false\n"
      "PARAMETER mirostat 1\n"
      "SYSTEM You are Mario from \"Super Mario Bros\", acting as an assistant.   \n"
      "TEMPLATE \"\"\"{{ if .System }}<|system|>\n"
      "{{ .System }}{{ end }}  \n"
      "<|user|>{{ .Prompt }}\"\"\"\n"
      "MESSAGE user Is Toronto in Canada?\n"
      "MESSAGE assistant yes\n"
      "LICENSE MIT\n"
      "license \"\"\"line one\n"
      "line two\"\"\"\n"
      "adapter ./lora.gguf\n";
  mlxr_modelfile mf;
  char err[256] = "";
  int rc = mlxr_modelfile_parse(text, strlen(text), &mf, err, sizeof err);
  CHECK(rc == MLXR_OK, "full Modelfile: %s", err);
  if (rc != MLXR_OK) return;
  CHECK(eq(mf.from, "llama3.2"), "FROM '%s'", mf.from);
  CHECK(same_params(&mf, "{\"temperature\":0.7,\"num_ctx\":4096,\"stop\":[\"<|im_end|>\",\"<|eot_id|>\"],"
                         "\"use_mmap\":false}"),
        "PARAMETER lines typed as Ollama's options");
  CHECK(mf.n_deprecated == 1, "mirostat dropped as deprecated (%d)", mf.n_deprecated);
  CHECK(eq(mf.system, "You are Mario from \"Super Mario Bros\", acting as an assistant."), "SYSTEM '%s'", mf.system);
  CHECK(eq(mf.template_text, "{{ if .System }}<|system|>\n{{ .System }}{{ end }}  \n<|user|>{{ .Prompt }}"),
        "TEMPLATE '%s'", mf.template_text);
  CHECK(mf.n_messages == 2 && eq(mf.messages[0].role, "user") && eq(mf.messages[0].content, "Is Toronto in Canada?") &&
            eq(mf.messages[1].role, "assistant") && eq(mf.messages[1].content, "yes"),
        "MESSAGE lines (%d)", mf.n_messages);
  CHECK(mf.n_licenses == 2 && eq(mf.licenses[0], "MIT") && eq(mf.licenses[1], "line one\nline two"),
        "LICENSE lines (%d)", mf.n_licenses);
  CHECK(eq(mf.adapter, "./lora.gguf"), "ADAPTER '%s'", mf.adapter);
  CHECK(!mf.draft && !mf.requires && !mf.renderer && !mf.parser, "absent instructions stay NULL");
  mlxr_modelfile_free(&mf);
}

static void line_endings(void) {
  const char *text = "\xEF\xBB\xBF"
                     "FROM ./model.gguf\r\n"
                     "SYSTEM \"two\r\nlines\"\r\n"
                     "PARAMETER seed 42\r"
                     "PARAMETER top_k 20";
  mlxr_modelfile mf;
  char err[256] = "";
  int rc = mlxr_modelfile_parse(text, strlen(text), &mf, err, sizeof err);
  CHECK(rc == MLXR_OK, "BOM, CRLF, CR and no final newline: %s", err);
  if (rc != MLXR_OK) return;
  CHECK(eq(mf.from, "./model.gguf"), "FROM after a BOM '%s'", mf.from);
  CHECK(eq(mf.system, "two\nlines"), "a quoted value across CRLF keeps one \\n: '%s'", mf.system);
  CHECK(same_params(&mf, "{\"seed\":42,\"top_k\":20}"), "CR-separated lines");
  mlxr_modelfile_free(&mf);
}

static void refusals(void) {
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"FROM a\nFOO bar\n", "line 2: unknown instruction 'FOO'"},
      {"FROM a\nSYSTEM: x\n", "line 2: unknown instruction 'SYSTEM:'"},
      {"FROM a\nFROM b\n", "line 2: FROM is given twice (first on line 1)"},
      {"FROM a\nSYSTEM x\n# c\nSYSTEM y\n", "line 4: SYSTEM is given twice (first on line 2)"},
      {"FROM a\nTEMPLATE x\ntemplate y\n", "line 3: TEMPLATE is given twice"},
      {"FROM a\nADAPTER x\nADAPTER y\n", "line 3: ADAPTER is given twice"},
      {"FROM a\nPARAMETER temperature 1\nPARAMETER temperature 2\n",
       "line 3: PARAMETER temperature is given twice (first on line 2)"},
      {"PARAMETER temperature 1\nSYSTEM hi\n", "no FROM line"},
      {"", "no FROM line"},
      {"# only a comment\n", "no FROM line"},
      {"FROM a\nPARAMETER temperature hot\n", "line 2: PARAMETER temperature wants a number, not 'hot'"},
      {"FROM a\nPARAMETER temperature nan\n", "wants a number"},
      {"FROM a\nPARAMETER temperature 1e999\n", "wants a number"},
      {"FROM a\nPARAMETER num_ctx 4.5\n", "line 2: PARAMETER num_ctx wants an integer, not '4.5'"},
      {"FROM a\nPARAMETER num_ctx 99999999999999999999999\n", "wants an integer"},
      {"FROM a\nPARAMETER use_mmap maybe\n", "wants true or false"},
      {"FROM a\nPARAMETER bogus 1\n", "line 2: unknown parameter 'bogus'"},
      {"FROM a\nPARAMETER Temperature 1\n", "unknown parameter 'Temperature'"},
      {"FROM a\nPARAMETER temperature\n", "line 2: PARAMETER wants a parameter name and then a value"},
      {"FROM a\nMESSAGE tool hi\n", "line 2: MESSAGE role 'tool' is not one of system, user or assistant"},
      {"FROM a\nMESSAGE user\n", "MESSAGE wants a role"},
      {"FROM a\nSYSTEM\n", "line 2: SYSTEM has no value"},
      {"FROM\nSYSTEM x\n", "line 1: FROM has no value"},
      {"FROM a\nTEMPLATE \"\"\"abc\nstill open\n", "line 2: the \"\"\" opened here is never closed"},
      {"FROM a\nSYSTEM \"abc\n", "line 2: the \" opened here is never closed"},
      {"FROM a\nSYSTEM \"\n", "never closed"},
      {"FROM a\nSYSTEM \"\"\"\"\"\n", "never closed"},
      {"FROM a\nSYSTEM \xff\xfe\n", "line 2: not UTF-8 text"},
      {"FROM a\nSYSTEM \xed\xa0\x80\n", "not UTF-8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mlxr_modelfile mf;
    char err[256] = "";
    int rc = mlxr_modelfile_parse(cases[i].text, strlen(cases[i].text), &mf, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID && strstr(err, cases[i].want) && !mf.from && !mf.parameters,
          "case %zu: got %d '%s', want an error containing '%s'", i, rc, err, cases[i].want);
    if (rc == MLXR_OK) mlxr_modelfile_free(&mf);
  }
  /* an integer a JSON number cannot hold exactly (fuzz_modelfile: it came back as 2.13e+17) */
  {
    const char *big = "FROM a\nPARAMETER seed 213333333333333333\n";
    mlxr_modelfile mf;
    char err[256] = "";
    int rc = mlxr_modelfile_parse(big, strlen(big), &mf, err, sizeof err);
    CHECK(rc == MLXR_ERR_RANGE && strstr(err, "line 2: PARAMETER seed") && strstr(err, "out of range"),
          "seed beyond 2^53: %d '%s'", rc, err);
    if (rc == MLXR_OK) mlxr_modelfile_free(&mf);
    const char *edge = "FROM a\nPARAMETER seed 9007199254740992\n";
    rc = mlxr_modelfile_parse(edge, strlen(edge), &mf, err, sizeof err);
    CHECK(rc == MLXR_OK && same_params(&mf, "{\"seed\":9007199254740992}"), "seed 2^53 is kept: %s", err);
    if (rc == MLXR_OK) mlxr_modelfile_free(&mf);
  }
  /* a NUL byte inside the text (length given, so it is not the end) */
  const char nul[] = "FROM a\nSYSTEM x\0y\n";
  mlxr_modelfile mf;
  char err[256] = "";
  int rc = mlxr_modelfile_parse(nul, sizeof nul - 1, &mf, err, sizeof err);
  CHECK(rc == MLXR_ERR_INVALID && strstr(err, "line 2: not UTF-8 text (or a NUL byte)"), "NUL byte: %d '%s'", rc,
        err);
  if (rc == MLXR_OK) mlxr_modelfile_free(&mf);
}

/* Values that need quoting survive a write and a read. */
static void round_trips(void) {
  static const char *const values[] = {
      "plain",
      "  leading and trailing blanks  ",
      "\"starts with a quote",
      "ends with a quote\"",
      "\"\"two quotes first",
      "multi\nline",
      "multi\nline \"quoted\" \nend\"",
      "inner line ends with a quote\"\nlast",
      "tab\tinside",
      "",
      "\"\"\"",
      "{{ .System }}\n\n",
      " one leading blank", /* fuzz_modelfile: written bare, it lost the blank */
      "\tleading tab",
  };
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    mlxr_modelfile mf = {0};
    mf.from = strdup("base:latest");
    mf.system = strdup(values[i]);
    mf.parameters = cJSON_Parse("{\"stop\":[\" x \",\"\\\"\"],\"temperature\":0.25,\"num_ctx\":8192,\"use_mmap\":true}");
    mf.licenses = malloc(sizeof *mf.licenses);
    mf.licenses[0] = strdup(values[i]);
    mf.n_licenses = 1;
    mf.messages = malloc(sizeof *mf.messages);
    mf.messages[0] = (mlxr_modelfile_message){strdup("user"), strdup(values[i])};
    mf.n_messages = 1;
    int ferr = 0;
    char *text = mlxr_modelfile_format(&mf, &ferr);
    CHECK(text != NULL, "value %zu: written (err %d)", i, ferr);
    mlxr_modelfile back;
    char err[256] = "";
    int rc = text ? mlxr_modelfile_parse(text, strlen(text), &back, err, sizeof err) : MLXR_ERR_INVALID;
    CHECK(rc == MLXR_OK, "value %zu: reads back: %s\n%s", i, err, text ? text : "");
    if (rc == MLXR_OK) {
      CHECK(eq(back.system, values[i]) && eq(back.licenses[0], values[i]) && eq(back.messages[0].content, values[i]) &&
                eq(back.from, "base:latest"),
            "value %zu: '%s' came back as '%s'", i, values[i], back.system ? back.system : "(null)");
      CHECK(cJSON_Compare(back.parameters, mf.parameters, true), "value %zu: parameters came back", i);
      mlxr_modelfile_free(&back);
    }
    free(text);
    mlxr_modelfile_free(&mf);
  }
  /* a value no quoting can carry: an inner line ending in """ and a quote at the very end */
  mlxr_modelfile mf = {0};
  mf.from = strdup("base");
  mf.system = strdup("a\"\"\"\nb\"");
  mf.parameters = cJSON_CreateObject();
  int ferr = 0;
  char *text = mlxr_modelfile_format(&mf, &ferr);
  CHECK(!text && ferr == MLXR_ERR_UNSUPPORTED, "an unwritable value is refused (%d)", ferr);
  free(text);
  mlxr_modelfile_free(&mf);
}

int main(void) {
  full_modelfile();
  line_endings();
  refusals();
  round_trips();
  return check_report("test_registry_modelfile");
}
