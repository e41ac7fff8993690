/*
 * fmt_util.c: file mapping and the name -> index hash table used by the format readers.
 * See fmt_util.h. The table is open addressing with linear probing at load factor <= 1/2, so a
 * lookup touches a slot or two; it never grows (readers know their counts before building it).
 */
#include "core/formats/fmt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/status.h"

int mlxr_fmt_map_file(const char *path, const uint8_t **base, size_t *size, char *err,
                      size_t err_len) {
  *base = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return mlxr_errf(err, err_len, e == ENOENT ? MLXR_ERR_NOT_FOUND : MLXR_ERR_IO,
                     "cannot open %s: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s is not a regular file", path);
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s: file too large to map", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return MLXR_OK;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED)
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot mmap %s: %s", path, strerror(e));
  *base = p;
  *size = (size_t)st.st_size;
  return MLXR_OK;
}

void mlxr_fmt_unmap(const uint8_t *base, size_t size) {
  if (base && size) munmap((void *)base, size);
}

static uint64_t fmt_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t)s[i];
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

int mlxr_fmt_index_init(mlxr_fmt_index *ix, size_t n) {
  size_t cap = 8;
  if (n > SIZE_MAX / 8 / sizeof(mlxr_fmt_slot)) return MLXR_ERR_NOMEM;
  while (cap < n * 2 + 1) {
    if (cap > SIZE_MAX / 4 / sizeof(mlxr_fmt_slot)) return MLXR_ERR_NOMEM;
    cap *= 2;
  }
  ix->slots = calloc(cap, sizeof(mlxr_fmt_slot));
  if (!ix->slots) {
    ix->mask = 0;
    return MLXR_ERR_NOMEM;
  }
  ix->mask = cap - 1;
  return MLXR_OK;
}

void mlxr_fmt_index_free(mlxr_fmt_index *ix) {
  free(ix->slots);
  ix->slots = NULL;
  ix->mask = 0;
}

bool mlxr_fmt_index_insert(mlxr_fmt_index *ix, const char *name, size_t len, int64_t value) {
  size_t i = (size_t)fmt_hash(name, len) & ix->mask;
  while (ix->slots[i].name) {
    const mlxr_fmt_slot *s = &ix->slots[i];
    if (s->len == len && memcmp(s->name, name, len) == 0) return false;
    i = (i + 1) & ix->mask;
  }
  ix->slots[i].name = name;
  ix->slots[i].len = len;
  ix->slots[i].value = value;
  return true;
}

int64_t mlxr_fmt_index_find(const mlxr_fmt_index *ix, const char *name, size_t len) {
  if (!ix->slots) return -1;
  size_t i = (size_t)fmt_hash(name, len) & ix->mask;
  while (ix->slots[i].name) {
    const mlxr_fmt_slot *s = &ix->slots[i];
    if (s->len == len && memcmp(s->name, name, len) == 0) return s->value;
    i = (i + 1) & ix->mask;
  }
  return -1;
}
