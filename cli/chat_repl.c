/*
 * chat_repl.c: `mlxr run MODEL` with no prompt on a terminal: an interactive chat, in Ollama's
 * habits. Each turn appends the user's message to the conversation, renders the whole
 * conversation with the model's own chat template (tokenizer.chat_template, through the template
 * interpreter), tokenizes it, and evaluates only what differs from the tokens already in the KV
 * cache (the sequence is truncated to the common prefix first), then streams the reply.
 *
 * Input: line editing and history through libedit's readline API when stdin is a terminal, plain
 * lines otherwise. A message that starts with three double quotes continues until a line that
 * ends with them (multi-line input). Commands: /bye (or end of input) quits, /clear forgets the
 * conversation, /? lists the commands.
 */
#include "cli/chat_repl.h"

#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "core/runtime/template/template.h"

typedef struct chat_state {
  mlxr_engine *e;
  const mlxr_tokenizer *tok;
  mlxr_template *tmpl;
  cJSON *messages;        /* the conversation (borrowed during a turn) */
  int seq;                /* KV sequence holding `cached` */
  int32_t *cached;        /* tokens whose K/V are in the sequence */
  int32_t n_cached;
  float *logits;          /* [n_vocab] */
  bool tty;
} chat_state;

/* One line of input (malloc'd, no newline), or NULL at end of input. */
static char *read_line(const chat_state *c, const char *prompt) {
  if (c->tty) {
    char *line = readline(prompt);
    if (line && *line) add_history(line);
    return line;
  }
  size_t cap = 0;
  char *line = NULL;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) {
    free(line);
    return NULL;
  }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  return line;
}

/* A whole message: one line, or a """ ... """ block. NULL at end of input. */
static char *read_message(const chat_state *c) {
  char *line = read_line(c, ">>> ");
  if (!line || strncmp(line, "\"\"\"", 3) != 0) return line;
  size_t cap = strlen(line) + 64, len = 0;
  char *msg = malloc(cap);
  if (!msg) {
    free(line);
    return NULL;
  }
  const char *first = line + 3;
  for (;;) {
    size_t l = strlen(first);
    bool end = l >= 3 && strcmp(first + l - 3, "\"\"\"") == 0 && (first != line + 3 || l > 0);
    if (end) l -= 3;
    if (len + l + 2 > cap) {
      cap = (len + l + 2) * 2;
      char *nm = realloc(msg, cap);
      if (!nm) break;
      msg = nm;
    }
    if (len > 0 || first != line + 3) msg[len++] = '\n';
    memcpy(msg + len, first, l);
    len += l;
    msg[len] = '\0';
    free(line);
    line = NULL;
    if (end) break;
    line = read_line(c, "... ");
    if (!line) break;
    first = line;
  }
  free(line);
  if (len > 0 && msg[0] == '\n') memmove(msg, msg + 1, len--);
  msg[len] = '\0';
  return msg;
}

static int render_prompt(chat_state *c, char **text, size_t *len, char *err, size_t err_len) {
  cJSON *vars = cJSON_CreateObject();
  if (!vars) return MLXR_ERR_NOMEM;
  cJSON_AddItemToObject(vars, "messages", cJSON_Duplicate(c->messages, true));
  cJSON_AddBoolToObject(vars, "add_generation_prompt", true);
  const int32_t bos = mlxr_tokenizer_bos(c->tok), eos = mlxr_tokenizer_eos(c->tok);
  cJSON_AddStringToObject(vars, "bos_token", bos >= 0 ? mlxr_tokenizer_token_text(c->tok, bos) : "");
  cJSON_AddStringToObject(vars, "eos_token", eos >= 0 ? mlxr_tokenizer_token_text(c->tok, eos) : "");
  int rc = mlxr_template_render(c->tmpl, vars, NULL, text, len, err, err_len);
  cJSON_Delete(vars);
  return rc;
}

/* Evaluate ids so that the sequence holds exactly them, reusing the common prefix. */
static int sync_kv(chat_state *c, const int32_t *ids, int32_t n, char *err, size_t err_len) {
  int32_t common = 0;
  while (common < c->n_cached && common < n && c->cached[common] == ids[common]) common++;
  if (common == n) common = n - 1; /* the last token must be evaluated for its logits */
  int rc = mlxr_kv_seq_truncate(mlxr_engine_kv(c->e), c->seq, common);
  if (rc != MLXR_OK) return mlxr_errf(err, err_len, rc, "KV cache: %s", mlxr_status_str(rc));
  rc = mlxr_engine_eval(c->e, c->seq, ids + common, n - common, common, false, c->logits, err, err_len);
  if (rc != MLXR_OK) return rc;
  memcpy(c->cached, ids, (size_t)n * sizeof(int32_t));
  c->n_cached = n;
  return MLXR_OK;
}

/* Generate a reply, streaming it; returns the reply text (malloc'd) or NULL. */
static char *generate(chat_state *c, mlxr_sampler *smp, int32_t n_predict, size_t *out_len, char *err,
                      size_t err_len) {
  const int32_t n_ctx = mlxr_engine_n_ctx(c->e);
  size_t cap = 256, len = 0;
  char *reply = malloc(cap);
  if (!reply) return NULL;
  reply[0] = '\0';
  mlxr_detok detok;
  mlxr_detok_init(&detok, c->tok, false);
  char piece[4096];
  for (int32_t i = 0; i < n_predict && c->n_cached < n_ctx; i++) {
    const int32_t id = mlxr_sampler_sample(smp, c->logits);
    mlxr_sampler_accept(smp, id);
    if (mlxr_tokenizer_is_eog(c->tok, id)) break;
    int w = mlxr_detok_push(&detok, id, piece, sizeof(piece));
    if (i == n_predict - 1 || c->n_cached + 1 >= n_ctx) {
      int f = mlxr_detok_flush(&detok, piece + (w > 0 ? w : 0), sizeof(piece) - (size_t)(w > 0 ? w : 0));
      if (f > 0) w = (w > 0 ? w : 0) + f;
    }
    if (w > 0) {
      fwrite(piece, 1, (size_t)w, stdout);
      fflush(stdout);
      if (len + (size_t)w + 1 > cap) {
        cap = (len + (size_t)w + 1) * 2;
        char *nr = realloc(reply, cap);
        if (!nr) break;
        reply = nr;
      }
      memcpy(reply + len, piece, (size_t)w);
      len += (size_t)w;
      reply[len] = '\0';
    }
    if (i == n_predict - 1 || c->n_cached + 1 >= n_ctx) break;
    if (mlxr_engine_eval(c->e, c->seq, &id, 1, c->n_cached, false, c->logits, err, err_len) != MLXR_OK) {
      fprintf(stderr, "\nmlxr: %s\n", err);
      break;
    }
    c->cached[c->n_cached++] = id;
  }
  printf("\n");
  *out_len = len;
  return reply;
}

/* The in-process turn: render, reuse the KV prefix, generate. */
typedef struct local_turn_ctx {
  chat_state *c;
  mlxr_sampler *smp;
  int32_t n_predict;
} local_turn_ctx;

static int local_turn(void *ctx, const cJSON *messages, char **reply, size_t *reply_len) {
  local_turn_ctx *t = ctx;
  chat_state *c = t->c;
  char err[512] = "";
  c->messages = (cJSON *)messages; /* borrowed for the render */
  char *text = NULL;
  size_t len = 0;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  if (render_prompt(c, &text, &len, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "mlxr run: chat template: %s\n", err);
    return 1;
  }
  /* the template writes BOS itself when the model wants it; add it only if it did not */
  const int32_t bos = mlxr_tokenizer_bos(c->tok);
  const char *bos_text = bos >= 0 ? mlxr_tokenizer_token_text(c->tok, bos) : NULL;
  mlxr_tokenize_params tp = {.add_special = !(bos_text && *bos_text && strncmp(text, bos_text, strlen(bos_text)) == 0),
                             .parse_special = true};
  int rc = mlxr_tokenizer_encode(c->tok, text, len, tp, &ids, &n_ids);
  free(text);
  if (rc != MLXR_OK || n_ids == 0 || (int64_t)n_ids >= mlxr_engine_n_ctx(c->e)) {
    fprintf(stderr, "mlxr run: the conversation (%zu tokens) does not fit the context of %d; /clear to start over\n",
            n_ids, (int)mlxr_engine_n_ctx(c->e));
    free(ids);
    return 1;
  }
  rc = sync_kv(c, ids, (int32_t)n_ids, err, sizeof(err));
  free(ids);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr run: %s\n", err);
    return -1;
  }
  *reply = generate(c, t->smp, t->n_predict, reply_len, err, sizeof(err));
  return *reply ? 0 : -1;
}

int mlxr_chat_loop(const mlxr_chat_backend *b, const char *system_prompt) {
  chat_state io = {.tty = isatty(STDIN_FILENO) != 0};
  cJSON *messages = cJSON_CreateArray();
  if (!messages) return 1;
  if (system_prompt) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", system_prompt);
    cJSON_AddItemToArray(messages, m);
  }
  if (io.tty) fprintf(stderr, "Chat with the model. /bye to quit, /clear to start over, \"\"\" for multi-line input.\n");
  int status = 0;
  for (;;) {
    char *msg = read_message(&io);
    if (!msg) break;
    if (strcmp(msg, "/bye") == 0) {
      free(msg);
      break;
    }
    if (strcmp(msg, "/clear") == 0) {
      cJSON_Delete(messages);
      messages = cJSON_CreateArray();
      if (system_prompt) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", system_prompt);
        cJSON_AddItemToArray(messages, m);
      }
      fprintf(stderr, "Cleared the conversation.\n");
      free(msg);
      continue;
    }
    if (strcmp(msg, "/?") == 0 || strcmp(msg, "/help") == 0) {
      fprintf(stderr, "  /bye     quit\n  /clear   forget the conversation\n  \"\"\"      begin or end a multi-line message\n");
      free(msg);
      continue;
    }
    if (!*msg) {
      free(msg);
      continue;
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", msg);
    cJSON_AddItemToArray(messages, m);
    free(msg);
    char *reply = NULL;
    size_t reply_len = 0;
    int rc = b->turn(b->ctx, messages, &reply, &reply_len);
    if (rc != 0) {
      cJSON_DeleteItemFromArray(messages, cJSON_GetArraySize(messages) - 1);
      free(reply);
      if (rc < 0) {
        status = 1;
        break;
      }
      continue;
    }
    /* template variables are JSON strings: a NUL byte cannot be carried, drop it */
    size_t w = 0;
    for (size_t r = 0; r < reply_len; r++) {
      if (reply[r]) reply[w++] = reply[r];
    }
    reply[w] = '\0';
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "role", "assistant");
    cJSON_AddStringToObject(a, "content", reply);
    cJSON_AddItemToArray(messages, a);
    free(reply);
  }
  cJSON_Delete(messages);
  return status;
}

int mlxr_chat_repl(mlxr_engine *e, const mlxr_sampler_params *sp, int32_t n_predict,
                   const char *system_prompt) {
  const mlxr_tokenizer *tok = mlxr_engine_tokenizer(e);
  size_t tlen = 0;
  const char *src = mlxr_gguf_get_str(mlxr_model_gguf(mlxr_engine_model(e)), "tokenizer.chat_template", &tlen);
  if (!src) {
    fprintf(stderr, "mlxr run: this model has no chat template; give a PROMPT to complete text instead\n");
    return 1;
  }
  char err[512] = "";
  chat_state c = {.e = e, .tok = tok};
  if (mlxr_template_new(src, tlen, &c.tmpl, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "mlxr run: the model's chat template does not compile: %s\n", err);
    return 1;
  }
  const int32_t n_vocab = mlxr_engine_hparams(e)->n_vocab;
  c.cached = malloc((size_t)mlxr_engine_n_ctx(e) * sizeof(int32_t));
  c.logits = malloc((size_t)n_vocab * sizeof(float));
  c.seq = mlxr_kv_seq_new(mlxr_engine_kv(e));
  local_turn_ctx t = {.c = &c, .smp = mlxr_sampler_new(sp, n_vocab), .n_predict = n_predict};
  int status = 1;
  if (!c.cached || !c.logits || c.seq < 0 || !t.smp) {
    fprintf(stderr, "mlxr run: out of memory\n");
  } else {
    mlxr_chat_backend b = {.ctx = &t, .turn = local_turn};
    status = mlxr_chat_loop(&b, system_prompt);
  }
  mlxr_sampler_free(t.smp);
  free(c.cached);
  free(c.logits);
  mlxr_template_free(c.tmpl);
  return status;
}
