/*
 * test_resp_store.c: the store of /v1/responses (daemon/server/resp_store.c): what put keeps comes
 * back from get as equal JSON; the count bound evicts the least recently used (a get counts as a
 * use); the byte bound evicts until the new entry fits and refuses one larger than the whole store;
 * a put of an existing id replaces it; item_reference lookups find input and output items by id,
 * the newest first; delete forgets. Threads are not exercised here (one mutex guards every call).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server/server_impl.h"

static int passes, failures;

static void check(const char *name, bool cond) {
  if (cond) passes++;
  else failures++, printf("FAIL %s\n", name);
}

/* A response {id, output: [{id: "<id>_out", type: message}], pad: n bytes}. */
static cJSON *response(const char *id, size_t pad) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON *out = cJSON_AddArrayToObject(o, "output");
  cJSON *it = cJSON_CreateObject();
  char iid[64];
  snprintf(iid, sizeof iid, "%s_out", id);
  cJSON_AddStringToObject(it, "id", iid);
  cJSON_AddStringToObject(it, "type", "message");
  cJSON_AddItemToArray(out, it);
  char *p = malloc(pad + 1);
  memset(p, 'x', pad);
  p[pad] = '\0';
  cJSON_AddStringToObject(o, "pad", p);
  free(p);
  return o;
}

static bool has(mlxr_resp_store *st, const char *id) { return mlxr_resp_store_get(st, id, NULL, NULL, NULL); }

static bool put(mlxr_resp_store *st, const char *id, size_t pad) {
  cJSON *r = response(id, pad);
  cJSON *conv = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"}]");
  char in[128];
  snprintf(in, sizeof in, "[{\"id\":\"%s_in\",\"type\":\"message\",\"role\":\"user\",\"content\":\"hi\"}]", id);
  cJSON *items = cJSON_Parse(in);
  bool ok = mlxr_resp_store_put(st, r, conv, items);
  cJSON_Delete(r);
  cJSON_Delete(conv);
  cJSON_Delete(items);
  return ok;
}

int main(void) {
  check("count 0 means no store", mlxr_resp_store_new(0, 1024) == NULL);
  mlxr_resp_store *st = mlxr_resp_store_new(3, 1 << 20);
  check("put", put(st, "a", 10) && put(st, "b", 10) && put(st, "c", 10));
  cJSON *r = NULL, *conv = NULL, *items = NULL, *want = response("a", 10);
  check("get", mlxr_resp_store_get(st, "a", &r, &conv, &items)); /* a is now the most recently used */
  check("get: the response", cJSON_Compare(r, want, true));
  check("get: the conversation", cJSON_GetArraySize(conv) == 1 && strcmp(cJSON_GetArrayItem(conv, 0)->child->valuestring, "user") == 0);
  check("get: the input items", cJSON_GetArraySize(items) == 1);
  cJSON_Delete(r);
  cJSON_Delete(conv);
  cJSON_Delete(items);
  cJSON_Delete(want);
  check("unknown id", !has(st, "zz"));
  check("put d", put(st, "d", 10));
  check("count bound evicts the least recently used (b)", !has(st, "b") && has(st, "a") && has(st, "c") && has(st, "d"));
  cJSON *item = mlxr_resp_store_item(st, "c_out");
  check("output item by id", item && strcmp(cJSON_GetObjectItem(item, "type")->valuestring, "message") == 0);
  cJSON_Delete(item);
  item = mlxr_resp_store_item(st, "d_in");
  check("input item by id", item != NULL);
  cJSON_Delete(item);
  check("evicted items are gone", mlxr_resp_store_item(st, "b_out") == NULL);
  check("replace keeps one entry", put(st, "c", 20) && has(st, "a") && has(st, "c") && has(st, "d"));
  check("delete", mlxr_resp_store_delete(st, "c") && !has(st, "c") && !mlxr_resp_store_delete(st, "c"));
  mlxr_resp_store_free(st);

  st = mlxr_resp_store_new(100, 3000);
  check("byte bound: two fit", put(st, "e", 1000) && put(st, "f", 1000));
  check("byte bound: a third evicts the oldest", put(st, "g", 1000) && !has(st, "e") && has(st, "f") && has(st, "g"));
  check("larger than the store: refused, nothing evicted", !put(st, "h", 5000) && has(st, "f") && has(st, "g") && !has(st, "h"));
  mlxr_resp_store_free(st);
  mlxr_resp_store_free(NULL);
  printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
