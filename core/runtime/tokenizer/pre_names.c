/*
 * pre_names.c: llama.cpp's tokenizer.ggml.pre names -> the pre-tokenizer they stand for.
 *
 * A GGUF written by llama.cpp's converter does not carry the tokenizer.json pipeline; it names
 * it (tokenizer.ggml.pre) and llama.cpp keeps a list of regexes per name (src/llama-vocab.cpp,
 * llm_tokenizer_bpe). Each list is applied in order, every regex splitting the current pieces
 * into matches and the text between them; then bytes are mapped to GPT-2's alphabet. That is
 * exactly a tokenizer.json Sequence of Split(Isolated) steps followed by ByteLevel without
 * regex, which is what mlxr_tok_pre_name_json builds. Names whose llama.cpp handling is custom
 * code rather than regexes (kimi-k2, afmoe) are not listed and fail to load.
 * The converter (tools/convert_tokenizer.c) uses the same table in reverse to pick the name
 * whose regexes equal a tokenizer.json's, so llama.cpp can load our files.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "core/runtime/tokenizer/tokenizer_impl.h"

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTR "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const re_llama3[] = {
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\xC2\xB5\xC3\x80-\xC3\x96\xC3\x98-\xC3\xB6\xC3\xB8-\xC6\xBA\xC6\xBC-\xC6\xBF\xC7\x84-\xCA\x93"
    "\xCA\x95-\xCA\xAF\xCD\xB0-\xCD\xB3\xCD\xB6\xCD\xB7\xCD\xBB-\xCD\xBD\xCD\xBF\xCE\x86\xCE\x88-\xCE\x8A"
    "\xCE\x8C\xCE\x8E-\xCE\xA1\xCE\xA3-\xCF\xB5\xCF\xB7-\xD2\x81\xD2\x8A-\xD4\xAF\xD4\xB1-\xD5\x96"
    "\xE1\x82\xA0-\xE1\x83\x85\xE1\x8E\xA0-\xE1\x8F\xB5\xE1\x8F\xB8-\xE1\x8F\xBD\xE1\xB2\x90-\xE1\xB2\xBA"
    "\xE1\xB2\xBD-\xE1\xB2\xBF\xE1\xB4\x80-\xE1\xB4\xAB\xE1\xB5\xAB-\xE1\xB5\xB7\xE1\xB5\xB9-\xE1\xB6\x9A"
    "\xE1\xB8\x80-\xE1\xBC\x95\xE1\xBC\x98-\xE1\xBC\x9D\xE1\xBC\xA0-\xE1\xBD\x85\xE1\xBD\x88-\xE1\xBD\x8D"
    "\xE1\xBD\x90-\xE1\xBD\x97\xE1\xBD\x99\xE1\xBD\x9B\xE1\xBD\x9D\xE1\xBD\x9F-\xE1\xBD\xBD\xE1\xBE\x80-"
    "\xE1\xBE\xB4\xE1\xBE\xB6-\xE1\xBE\xBC\xE1\xBE\xBE\xE1\xBF\x82-\xE1\xBF\x84\xE1\xBF\x86-\xE1\xBF\x8C"
    "\xE1\xBF\x90-\xE1\xBF\x93\xE1\xBF\x96-\xE1\xBF\x9B\xE1\xBF\xA0-\xE1\xBF\xAC\xE1\xBF\xB2-\xE1\xBF\xB4"
    "\xE1\xBF\xB6-\xE1\xBF\xBC\xE2\x84\x82\xE2\x84\x87\xE2\x84\x8A-\xE2\x84\x93\xE2\x84\x95\xE2\x84\x99-"
    "\xE2\x84\x9D\xE2\x84\xA4\xE2\x84\xA6\xE2\x84\xA8\xE2\x84\xAA-\xE2\x84\xAD\xE2\x84\xAF-\xE2\x84\xB4"
    "\xE2\x84\xB9\xE2\x84\xBC-\xE2\x84\xBF\xE2\x85\x85-\xE2\x85\x89\xE2\x85\x8E\xE2\x86\x83\xE2\x86\x84"
    "\xE2\xB0\x80-\xE2\xB1\xBB\xE2\xB1\xBE-\xE2\xB3\xA4\xE2\xB3\xAB-\xE2\xB3\xAE\xE2\xB3\xB2\xE2\xB3\xB3"
    "\xEA\x99\x80-\xEA\x99\xAD\xEA\x9A\x80-\xEA\x9A\x9B\xEA\x9C\xA2-\xEA\x9D\xAF\xEA\x9D\xB1-\xEA\x9E\x87"
    "\xEA\x9E\x8B-\xEA\x9E\x8E\xEA\xAD\xB0-\xEA\xAE\xBF\xEF\xAC\x80-\xEF\xAC\x86\xEF\xAC\x93-\xEF\xAC\x97"
    "\xEF\xBC\xA1-\xEF\xBC\xBA\xEF\xBD\x81-\xEF\xBD\x9A\xF0\x90\x90\x80-\xF0\x90\x91\x8F\xF0\x90\x92\xB0-"
    "\xF0\x90\x93\x93\xF0\x90\x93\x98-\xF0\x90\x93\xBB\xF0\x90\xB2\x80-\xF0\x90\xB2\xB2\xF0\x90\xB3\x80-"
    "\xF0\x90\xB3\xB2\xF0\x91\xA2\xA0-\xF0\x91\xA3\x9F\xF0\x9E\xA4\x80-\xF0\x9E\xA5\x83]+",
    "\\s?[!-/:-~\xEF\xBC\x81-\xEF\xBC\x8F\xEF\xBC\x9A-\xEF\xBD\x9E\xE2\x80\x98-\xE2\x80\x9F\xE3\x80\x80-\xE3\x80\x82]+",
    "\\s+$",
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+",
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+", "\\p{N}", NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]", NULL};
static const char *const re_starcoder[] = {"\\p{N}", GPT2_RE, NULL};
static const char *const re_gpt2[] = {GPT2_RE, NULL};
static const char *const re_qwen2[] = {
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", NULL};
static const char *const re_bloom[] = {
    " ?[^(\\s|.,!?\xE2\x80\xA6\xE3\x80\x82\xEF\xBC\x8C\xE3\x80\x81\xE0\xA5\xA4\xDB\x94\xD8\x8C)]+", NULL};
static const char *const re_viking[] = {
    " ?[^(\\s|.,!?\xE2\x80\xA6\xE3\x80\x82\xEF\xBC\x8C\xE3\x80\x81\xE0\xA5\xA4\xDB\x94\xD8\x8C)]+", "\\p{N}", NULL};
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+("
    "(?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_chameleon[] = {
    "<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]", GPT2_RE, NULL};
static const char *const re_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" CONTR
    "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" CONTR
    "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_superbpe[] = {"\\p{N}+", "(?=(\\d{3})+(?!\\d))", NULL};
static const char *const re_bailing[] = {
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*["
    "\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_seed_coder[] = {
    CONTR "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", NULL};

/* Order matters for the converter's reverse lookup: the first name with given regexes is the
 * one it writes. */
static const mlxr_tok_pre_name k_names[] = {
    {"llama-bpe", re_llama3, true},     {"llama3", re_llama3, true},
    {"llama-v3", re_llama3, true},      {"falcon3", re_llama3, true},
    {"pixtral", re_llama3, true},       {"dbrx", re_llama3, false},
    {"smaug-bpe", re_llama3, false},    {"chatglm-bpe", re_llama3, false},
    {"glm4", re_llama3, false},         {"qwen2", re_qwen2, false},
    {"deepseek-r1-qwen", re_qwen2, false}, {"stablelm2", re_qwen2, false},
    {"hunyuan", re_qwen2, false},       {"grok-2", re_qwen2, false},
    {"megrez", re_qwen2, false},        {"default", re_default, false},
    {"deepseek-llm", re_deepseek_llm, false}, {"deepseek-coder", re_deepseek_coder, false},
    {"deepseek-v3", re_deepseek3, false}, {"falcon", re_falcon, false},
    {"gpt-2", re_gpt2, false},          {"mpt", re_gpt2, false},
    {"olmo", re_gpt2, false},           {"jais", re_gpt2, false},
    {"trillion", re_gpt2, false},       {"phi-2", re_gpt2, false},
    {"starcoder", re_starcoder, false}, {"refact", re_starcoder, false},
    {"command-r", re_starcoder, false}, {"smollm", re_starcoder, false},
    {"codeshell", re_starcoder, false}, {"exaone", re_starcoder, false},
    {"minerva-7b", re_starcoder, false}, {"poro-chat", re_bloom, false},
    {"bloom", re_bloom, false},         {"gpt3-finnish", re_bloom, false},
    {"viking", re_viking, false},       {"tekken", re_tekken, true},
    {"chameleon", re_chameleon, false}, {"gpt-4o", re_gpt4o, false},
    {"llama4", re_gpt4o, false},        {"superbpe", re_superbpe, false},
    {"bailingmoe", re_bailing, false},  {"seed-coder", re_seed_coder, false},
};

const mlxr_tok_pre_name *mlxr_tok_pre_name_find(const char *name) {
  for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++)
    if (strcmp(k_names[i].name, name) == 0) return &k_names[i];
  return NULL;
}

cJSON *mlxr_tok_pre_name_json(const mlxr_tok_pre_name *pn) {
  cJSON *root = cJSON_CreateObject();
  cJSON *arr = cJSON_CreateArray();
  if (!root || !arr) goto fail;
  cJSON_AddStringToObject(root, "type", "Sequence");
  cJSON_AddItemToObject(root, "pretokenizers", arr);
  for (size_t i = 0; pn->regexes[i]; i++) {
    cJSON *s = cJSON_CreateObject();
    cJSON *p = cJSON_CreateObject();
    if (!s || !p) {
      cJSON_Delete(s);
      cJSON_Delete(p);
      goto fail_root;
    }
    cJSON_AddStringToObject(s, "type", "Split");
    cJSON_AddStringToObject(p, "Regex", pn->regexes[i]);
    cJSON_AddItemToObject(s, "pattern", p);
    cJSON_AddStringToObject(s, "behavior", "Isolated");
    cJSON_AddBoolToObject(s, "invert", false);
    cJSON_AddItemToArray(arr, s);
  }
  cJSON *bl = cJSON_CreateObject();
  if (!bl) goto fail_root;
  cJSON_AddStringToObject(bl, "type", "ByteLevel");
  cJSON_AddBoolToObject(bl, "add_prefix_space", false);
  cJSON_AddBoolToObject(bl, "use_regex", false);
  cJSON_AddItemToArray(arr, bl);
  return root;
fail:
  cJSON_Delete(arr);
fail_root:
  cJSON_Delete(root);
  return NULL;
}

/* Reverse lookup for the converter: the name whose regex list equals the given one. */
const char *mlxr_tok_pre_name_match(const char *const *regexes, size_t n) {
  for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++) {
    size_t k = 0;
    while (k < n && k_names[i].regexes[k] && strcmp(k_names[i].regexes[k], regexes[k]) == 0) k++;
    if (k == n && !k_names[i].regexes[k]) return k_names[i].name;
  }
  return NULL;
}
