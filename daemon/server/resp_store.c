/*
 * resp_store.c: the responses that /v1/responses keeps (store: true, the default) so that a later
 * request can continue them (previous_response_id), fetch them (GET /v1/responses/{id}), list
 * their input items, refer to one of their items (item_reference) or delete them.
 *
 * Each entry holds serialized JSON (immutable, so its size is known and a reader gets a private
 * copy by parsing): the response object, the conversation it ends (chat-shaped messages, the
 * response's own output included: what a continuation starts from) and the input items; plus an
 * index of the ids of its input and output items. Entries live in an array kept in use order
 * (least recently used first); a put or get moves an entry to the end. The store is bounded by
 * a count and a byte total: a put evicts from the front until both hold. The count is small
 * (hundreds), so lookups are linear scans.
 *
 * Threads: every call takes the store's mutex; any connection thread may call any function.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/server_impl.h"

typedef struct resp_entry {
  char *id;
  char *response;      /* JSON text */
  char *conversation;  /* JSON text: array of chat messages */
  char *input_items;   /* JSON text: array */
  char **item_ids;     /* [n_items] ids of input and output items */
  char **items;        /* [n_items] each item's JSON text */
  int n_items;
  size_t bytes;        /* everything above, for the byte bound */
} resp_entry;

struct mlxr_resp_store {
  pthread_mutex_t lock;
  resp_entry *e;       /* [n], least recently used first */
  int n;
  int max_count;
  size_t max_bytes;
  size_t bytes;
};

mlxr_resp_store *mlxr_resp_store_new(int max_count, size_t max_bytes) {
  if (max_count <= 0 || max_bytes == 0) return NULL;
  mlxr_resp_store *st = calloc(1, sizeof(*st));
  if (!st) return NULL;
  st->e = calloc((size_t)max_count, sizeof(*st->e));
  if (!st->e) {
    free(st);
    return NULL;
  }
  st->max_count = max_count;
  st->max_bytes = max_bytes;
  pthread_mutex_init(&st->lock, NULL);
  return st;
}

static void entry_free(resp_entry *e) {
  free(e->id);
  free(e->response);
  free(e->conversation);
  free(e->input_items);
  for (int i = 0; i < e->n_items; i++) {
    free(e->item_ids[i]);
    free(e->items[i]);
  }
  free(e->item_ids);
  free(e->items);
  memset(e, 0, sizeof(*e));
}

void mlxr_resp_store_free(mlxr_resp_store *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) entry_free(&st->e[i]);
  free(st->e);
  pthread_mutex_destroy(&st->lock);
  free(st);
}

/* Remove entry i (lock held). */
static void remove_at(mlxr_resp_store *st, int i) {
  st->bytes -= st->e[i].bytes;
  entry_free(&st->e[i]);
  memmove(&st->e[i], &st->e[i + 1], (size_t)(st->n - i - 1) * sizeof(*st->e));
  st->n--;
}

static int find(const mlxr_resp_store *st, const char *id) {
  for (int i = 0; i < st->n; i++)
    if (strcmp(st->e[i].id, id) == 0) return i;
  return -1;
}

/* Entry i becomes the most recently used; returns its new index (lock held). */
static int touch(mlxr_resp_store *st, int i) {
  resp_entry tmp = st->e[i];
  memmove(&st->e[i], &st->e[i + 1], (size_t)(st->n - i - 1) * sizeof(*st->e));
  st->e[st->n - 1] = tmp;
  return st->n - 1;
}

static char *print_or_empty(const cJSON *v, const char *empty) {
  return v ? mlxr_json_print(v) : strdup(empty);
}

/* Index the items of arr that have a string id. */
static bool index_items(resp_entry *e, const cJSON *arr) {
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
    if (!cJSON_IsString(id)) continue;
    char **ni = realloc(e->item_ids, (size_t)(e->n_items + 1) * sizeof(char *));
    if (!ni) return false;
    e->item_ids = ni;
    char **nj = realloc(e->items, (size_t)(e->n_items + 1) * sizeof(char *));
    if (!nj) return false;
    e->items = nj;
    e->item_ids[e->n_items] = strdup(id->valuestring);
    e->items[e->n_items] = mlxr_json_print(it);
    e->n_items++;
    if (!e->item_ids[e->n_items - 1] || !e->items[e->n_items - 1]) return false;
    e->bytes += strlen(e->item_ids[e->n_items - 1]) + strlen(e->items[e->n_items - 1]);
  }
  return true;
}

bool mlxr_resp_store_put(mlxr_resp_store *st, const cJSON *response, const cJSON *conversation,
                         const cJSON *input_items) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(response, "id");
  if (!st || !cJSON_IsString(id)) return false;
  resp_entry e = {0};
  e.id = strdup(id->valuestring);
  e.response = print_or_empty(response, "{}");
  e.conversation = print_or_empty(conversation, "[]");
  e.input_items = print_or_empty(input_items, "[]");
  bool ok = e.id && e.response && e.conversation && e.input_items;
  if (ok) {
    e.bytes = strlen(e.id) + strlen(e.response) + strlen(e.conversation) + strlen(e.input_items);
    ok = index_items(&e, input_items) && index_items(&e, cJSON_GetObjectItemCaseSensitive(response, "output"));
  }
  if (!ok || e.bytes > st->max_bytes) {
    entry_free(&e);
    return false;
  }
  pthread_mutex_lock(&st->lock);
  int old = find(st, e.id);
  if (old >= 0) remove_at(st, old);
  while (st->n > 0 && (st->n >= st->max_count || st->bytes + e.bytes > st->max_bytes)) remove_at(st, 0);
  st->e[st->n++] = e;
  st->bytes += e.bytes;
  pthread_mutex_unlock(&st->lock);
  return true;
}

bool mlxr_resp_store_get(mlxr_resp_store *st, const char *id, cJSON **response,
                         cJSON **conversation, cJSON **input_items) {
  if (response) *response = NULL;
  if (conversation) *conversation = NULL;
  if (input_items) *input_items = NULL;
  if (!st || !id) return false;
  pthread_mutex_lock(&st->lock);
  int i = find(st, id);
  if (i >= 0) {
    i = touch(st, i);
    if (response) *response = cJSON_Parse(st->e[i].response);
    if (conversation) *conversation = cJSON_Parse(st->e[i].conversation);
    if (input_items) *input_items = cJSON_Parse(st->e[i].input_items);
  }
  pthread_mutex_unlock(&st->lock);
  return i >= 0;
}

bool mlxr_resp_store_delete(mlxr_resp_store *st, const char *id) {
  if (!st || !id) return false;
  pthread_mutex_lock(&st->lock);
  int i = find(st, id);
  if (i >= 0) remove_at(st, i);
  pthread_mutex_unlock(&st->lock);
  return i >= 0;
}

cJSON *mlxr_resp_store_item(mlxr_resp_store *st, const char *item_id) {
  if (!st || !item_id) return NULL;
  cJSON *out = NULL;
  pthread_mutex_lock(&st->lock);
  for (int i = st->n - 1; i >= 0 && !out; i--) /* the newest first */
    for (int k = 0; k < st->e[i].n_items && !out; k++)
      if (strcmp(st->e[i].item_ids[k], item_id) == 0) out = cJSON_Parse(st->e[i].items[k]);
  pthread_mutex_unlock(&st->lock);
  return out;
}
