/*
 * test_server_chat.c: the daemon's chat output parser (daemon/server/chat.h) on hand-written model
 * outputs whose split into content / reasoning / tool calls is known by construction: Hermes/Qwen
 * <tool_call> blocks (one and several), Llama 3.1 JSON calls (plain, <|python_tag|>, ';'-separated),
 * <think> blocks (opened by the output or by the prompt), malformed calls given back as content,
 * and text that only looks like a tag. Every case is fed whole and also one byte at a time (and at
 * every split point for short ones), so a tag split across tokens must give the same result.
 * Forced (tool_choice) and cut (max tokens) outputs: a half-written call is dropped, never content.
 * Output blocks (mlxr_chat_blocks): the open/delta/close sequence of reasoning, text and calls.
 * Also checks mlxr_chat_build_vars (content parts joined, tool-call arguments parsed into objects,
 * Ollama fields mapped, bad roles rejected).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/chat.h"

static int failures = 0;
static int passes = 0;

typedef struct result {
  char content[4096];
  char reasoning[4096];
  char tools[4096]; /* "name:{args};" per call, args compact JSON */
} result;

static void cat(char *dst, size_t cap, const char *s, size_t n) {
  size_t l = strlen(dst);
  if (l + n >= cap) n = cap - l - 1;
  memcpy(dst + l, s, n);
  dst[l + n] = '\0';
}

static void on_delta(void *user, const mlxr_chat_delta *d) {
  result *r = user;
  if (d->part == MLXR_CHAT_CONTENT) cat(r->content, sizeof r->content, d->text, d->len);
  else if (d->part == MLXR_CHAT_REASONING) cat(r->reasoning, sizeof r->reasoning, d->text, d->len);
  else {
    char *args = cJSON_PrintUnformatted(d->tool_args);
    char buf[1024];
    snprintf(buf, sizeof buf, "%d/%s:%s;", d->tool_index, d->tool_name, args ? args : "?");
    free(args);
    cat(r->tools, sizeof r->tools, buf, strlen(buf));
  }
}

static void run(const char *text, bool tools, bool think, size_t step, result *r) {
  memset(r, 0, sizeof(*r));
  mlxr_chat_parser p;
  mlxr_chat_parser_init(&p, tools, think);
  size_t n = strlen(text);
  if (step == 0) {
    mlxr_chat_parser_push(&p, text, n, true, on_delta, r);
  } else {
    for (size_t i = 0; i < n; i += step) mlxr_chat_parser_push(&p, text + i, i + step <= n ? step : n - i, false, on_delta, r);
    mlxr_chat_parser_push(&p, "", 0, true, on_delta, r);
  }
  mlxr_chat_parser_free(&p);
}

static void expect(const char *name, const char *text, bool tools, bool think, const char *content,
                   const char *reasoning, const char *calls) {
  size_t steps[] = {0, 1, 2, 3, 7};
  for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
    result r;
    run(text, tools, think, steps[s], &r);
    if (strcmp(r.content, content) || strcmp(r.reasoning, reasoning) || strcmp(r.tools, calls)) {
      failures++;
      printf("FAIL %s (step %zu)\n  content   '%s' want '%s'\n  reasoning '%s' want '%s'\n  tools     '%s' want '%s'\n",
             name, steps[s], r.content, content, r.reasoning, reasoning, r.tools, calls);
      return;
    }
  }
  /* every two-piece split */
  size_t n = strlen(text);
  for (size_t k = 1; k < n && n < 200; k++) {
    result r;
    memset(&r, 0, sizeof r);
    mlxr_chat_parser p;
    mlxr_chat_parser_init(&p, tools, think);
    mlxr_chat_parser_push(&p, text, k, false, on_delta, &r);
    mlxr_chat_parser_push(&p, text + k, n - k, true, on_delta, &r);
    mlxr_chat_parser_free(&p);
    if (strcmp(r.content, content) || strcmp(r.reasoning, reasoning) || strcmp(r.tools, calls)) {
      failures++;
      printf("FAIL %s (split at %zu): content '%s' reasoning '%s' tools '%s'\n", name, k, r.content, r.reasoning, r.tools);
      return;
    }
  }
  passes++;
}

static void check(const char *name, bool cond) {
  if (cond) passes++;
  else failures++, printf("FAIL %s\n", name);
}

/* A forced (tool_choice required/named) or cut (max tokens) output, whole and byte by byte: no
 * half-written call may come out as content. */
static void expect_flags(const char *name, const char *text, bool forced, bool cut, const char *content, const char *calls) {
  for (size_t step = 0; step < 2; step++) {
    result r;
    memset(&r, 0, sizeof r);
    mlxr_chat_parser p;
    mlxr_chat_parser_init(&p, true, false);
    p.forced = forced;
    size_t n = strlen(text);
    for (size_t i = 0; step && i < n; i++) mlxr_chat_parser_push(&p, text + i, 1, false, on_delta, &r);
    p.cut = cut;
    mlxr_chat_parser_push(&p, text, step ? 0 : n, true, on_delta, &r);
    mlxr_chat_parser_free(&p);
    char label[160];
    snprintf(label, sizeof label, "%s (step %zu): content '%.40s' tools '%.60s'", name, step, r.content, r.tools);
    check(label, strcmp(r.content, content) == 0 && strcmp(r.tools, calls) == 0);
  }
}

/* Blocks: the open/delta/close sequence, summarized as "R<i>:text|" (reasoning), "T<i>:text|",
 * "C<i>:name:args|", with each block's text checked against its deltas. */
typedef struct block_log {
  char out[2048];
  char deltas[1024];
  int opens, closes;
  bool bad;
} block_log;

static void bl_open(void *user, mlxr_block *b) {
  block_log *l = user;
  if (b->index != l->opens || b->len != 0) l->bad = true;
  l->opens++;
  l->deltas[0] = '\0';
  snprintf(b->id, sizeof b->id, "id%d", b->index);
}

static void bl_delta(void *user, const mlxr_block *b, const char *text, size_t len) {
  block_log *l = user;
  if (b->closed || b->index != l->opens - 1) l->bad = true;
  cat(l->deltas, sizeof l->deltas, text, len);
}

static void bl_close(void *user, const mlxr_block *b) {
  block_log *l = user;
  l->closes++;
  if (strcmp(b->text ? b->text : "", l->deltas) != 0 || strcmp(b->id, "") == 0) l->bad = true;
  char buf[600];
  const char *k = b->kind == MLXR_BLOCK_REASONING ? "R" : b->kind == MLXR_BLOCK_TEXT ? "T" : "C";
  if (b->kind == MLXR_BLOCK_TOOL_CALL) snprintf(buf, sizeof buf, "%s%d:%s:%s|", k, b->index, b->name, b->text);
  else snprintf(buf, sizeof buf, "%s%d:%s|", k, b->index, b->text ? b->text : "");
  cat(l->out, sizeof l->out, buf, strlen(buf));
}

static void expect_blocks(const char *name, const char *text, bool think, const char *want, int want_reasoned) {
  static const mlxr_block_ops ops = {bl_open, bl_delta, bl_close};
  for (size_t step = 1; step <= 3; step += 2) {
    block_log l;
    memset(&l, 0, sizeof l);
    mlxr_chat_blocks bs;
    mlxr_chat_blocks_init(&bs, true, think, &ops, &l);
    size_t n = strlen(text);
    int reasoned = 0;
    for (size_t i = 0; i < n; i += step) reasoned += mlxr_chat_blocks_push(&bs, text + i, i + step <= n ? step : n - i, false);
    mlxr_chat_blocks_push(&bs, "", 0, true);
    char label[200];
    snprintf(label, sizeof label, "blocks %s (step %zu): '%.120s'", name, step, l.out);
    check(label, strcmp(l.out, want) == 0 && !l.bad && l.opens == l.closes && l.opens == bs.n &&
                     (want_reasoned < 0 || (step == 1 && reasoned == want_reasoned) || step > 1));
    mlxr_chat_blocks_free(&bs);
  }
}

int main(void) {
  expect("plain", "Hello, world!", false, false, "Hello, world!", "", "");
  expect("plain with tools", "Hello there.", true, false, "Hello there.", "", "");
  expect("lt sign", "a < b and <thin", false, false, "a < b and <thin", "", "");
  expect("tag-like text", "use <tool> and <think-tank>", true, false, "use <tool> and <think-tank>", "", "");
  expect("think", "<think>Let me see.</think>\n\nThe answer is 4.", false, false, "The answer is 4.", "Let me see.", "");
  expect("think opened by prompt", "pondering...\n</think>\n\nDone.", false, true, "Done.", "pondering...\n", "");
  expect("unclosed think", "<think>still thinking", false, false, "", "still thinking", "");
  expect("hermes one", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", true, false,
         "", "", "0/get_weather:{\"city\":\"Paris\"};");
  expect("hermes two", "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
         true, false, "", "", "0/a:{};1/b:{\"x\":[1,2]};");
  expect("hermes after text", "Let me check.\n\n<tool_call>{\"name\":\"f\",\"arguments\":{\"q\":\"<x>\"}}</tool_call>", true, false,
         "Let me check.", "", "0/f:{\"q\":\"<x>\"};");
  expect("hermes string arguments", "<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}</tool_call>", true, false, "", "", "0/f:{\"a\":1};");
  expect("hermes ignored without tools", "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", false, false,
         "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", "", "");
  expect("malformed hermes kept", "<tool_call>{not json}</tool_call> ok", true, false, "<tool_call>{not json}</tool_call> ok", "", "");
  expect("unterminated hermes parses", "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":1}}", true, false, "", "", "0/f:{\"a\":1};");
  expect("think then tool", "<think>need weather</think>\n<tool_call>{\"name\":\"w\",\"arguments\":{}}</tool_call>", true, false,
         "", "need weather", "0/w:{};");
  expect("llama json", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", true, false, "", "", "0/get_weather:{\"city\":\"Oslo\"};");
  expect("llama python_tag", "<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"x\"}}", true, false, "", "", "0/search:{\"q\":\"x\"};");
  expect("llama several", "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"n\": 2}}", true, false, "", "",
         "0/a:{};1/b:{\"n\":2};");
  expect("json but not a call", "{\"answer\": 42}", true, false, "{\"answer\": 42}", "", "");
  expect("json without tools", "{\"name\": \"a\", \"parameters\": {}}", false, false, "{\"name\": \"a\", \"parameters\": {}}", "", "");
  expect("utf8 content", "Größe: 5 — ok ✓", true, false, "Größe: 5 — ok ✓", "", "");

  /* forced tool calls and outputs cut by max tokens never leak a half-written call */
  expect_flags("cut hermes, broken", "<tool_call>\n{\"name\": \"f\", \"argu", false, true, "", "");
  expect_flags("cut hermes, whole JSON kept", "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":1}}", false, true, "", "0/f:{\"a\":1};");
  expect_flags("cut after a call", "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>\n<tool_call>{\"na", false, true, "", "0/f:{};");
  expect_flags("forced, cut inside the next tag", "<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>\n<tool_", true, true, "", "0/f:{};");
  expect_flags("forced, nothing but a tag start", "<", true, true, "", "");
  expect_flags("forced llama, second call cut", "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"param", true, true, "", "0/a:{};");
  expect_flags("forced llama, cut in the first", "{\"name\": \"a\", \"para", true, true, "", "");
  expect_flags("not cut: broken call given back", "<tool_call>{bad", false, false, "<tool_call>{bad", "");
  expect_flags("cut plain text kept", "Hello <b>", false, true, "Hello <b>", "");

  /* output blocks */
  expect_blocks("text", "Hello world", false, "T0:Hello world|", 0);
  expect_blocks("think, text, call", "<think>hmm</think>\n\nIt is.<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":1}}</tool_call>", false,
                "R0:hmm|T1:It is.|C2:f:{\"a\":1}|", -1);
  expect_blocks("prompt opened think", "deep thought", true, "R0:deep thought|", 12);
  expect_blocks("two calls", "<tool_call>{\"name\":\"a\",\"arguments\":{}}</tool_call>\n<tool_call>{\"name\":\"b\",\"arguments\":{\"x\":[1]}}</tool_call>",
                false, "C0:a:{}|C1:b:{\"x\":[1]}|", 0);
  expect_blocks("nothing", "", false, "", 0);

  /* build_vars */
  char err[256] = "";
  cJSON *msgs = cJSON_Parse("[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                            "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
                            "{\"role\":\"tool\",\"content\":\"r\",\"tool_call_id\":\"c1\"}]");
  cJSON *kw = cJSON_Parse("{\"enable_thinking\":false}");
  cJSON *vars = mlxr_chat_build_vars(msgs, NULL, kw, false, true, "<s>", "</s>", err, sizeof err);
  check("build_vars ok", vars != NULL);
  if (vars) {
    cJSON *m = cJSON_GetObjectItem(vars, "messages");
    check("developer -> system", strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "system") == 0);
    check("parts joined", strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content")->valuestring, "a\nb") == 0);
    cJSON *args = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "tool_calls"), 0), "function"), "arguments");
    check("arguments parsed to object", cJSON_IsObject(args) && cJSON_GetObjectItem(args, "x")->valuedouble == 1);
    check("kwargs copied", cJSON_IsFalse(cJSON_GetObjectItem(vars, "enable_thinking")));
    check("add_generation_prompt", cJSON_IsTrue(cJSON_GetObjectItem(vars, "add_generation_prompt")));
    check("bos", strcmp(cJSON_GetObjectItem(vars, "bos_token")->valuestring, "<s>") == 0);
    check("no tools key when none", cJSON_GetObjectItem(vars, "tools") == NULL);
  }
  cJSON_Delete(vars);
  cJSON_Delete(msgs);
  cJSON_Delete(kw);
  msgs = cJSON_Parse("[{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hm\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]},{\"role\":\"tool\",\"content\":\"1\",\"tool_name\":\"f\"}]");
  vars = mlxr_chat_build_vars(msgs, NULL, NULL, true, false, "", "", err, sizeof err);
  check("ollama vars ok", vars != NULL);
  if (vars) {
    cJSON *m = cJSON_GetObjectItem(vars, "messages");
    check("thinking -> reasoning_content", strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "reasoning_content")->valuestring, "hm") == 0);
    check("tool_name -> name", strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "name")->valuestring, "f") == 0);
    check("type added", strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "tool_calls"), 0), "type")->valuestring, "function") == 0);
  }
  cJSON_Delete(vars);
  cJSON_Delete(msgs);
  const char *bad[] = {"[{\"role\":\"wizard\",\"content\":\"x\"}]", "[{\"content\":\"x\"}]", "[{\"role\":\"user\",\"content\":5}]",
                       "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]", "[1]",
                       "[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    msgs = cJSON_Parse(bad[i]);
    err[0] = '\0';
    vars = mlxr_chat_build_vars(msgs, NULL, NULL, false, true, "", "", err, sizeof err);
    char name[80];
    snprintf(name, sizeof name, "bad messages %zu rejected with a message", i);
    check(name, vars == NULL && err[0] != '\0');
    cJSON_Delete(vars);
    cJSON_Delete(msgs);
  }
  check("prompt opens think", mlxr_chat_prompt_opens_think("<|im_start|>assistant\n<think>\n"));
  check("prompt closed think", !mlxr_chat_prompt_opens_think("<think>\n\n</think>\n\n"));
  check("prompt no think", !mlxr_chat_prompt_opens_think("hello"));

  printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
