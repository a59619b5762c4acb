/*
 * Crossing into JavaScript: a captured request's arguments are passed to the mount's handler
 * (binding.ts makes them a FuseRequest, by name); JavaScript answers it by its
 * handle (replies.c). And the small conversions both directions use.
 *
 * A handle is an index into a table of requests JavaScript holds, with that entry's generation:
 * a request is freed when answered, and its entry's generation moves on, so a second answer
 * (or one after the mount was disposed) names no request and is refused, never a freed one.
 * The table belongs to the module's instance (its napi_env): requests, answers and the table
 * all live on the JS thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sb-fuse.h"

/* handle = generation * INDEX_SPAN + index: exact in a double while generation < 2^29. */
#define INDEX_SPAN 16777216.0
#define MAX_INDEX 16777215u
#define MAX_GENERATION 536870911u

struct handle_entry {
  struct sb_req *req; /* NULL while free */
  uint32_t generation;
  uint32_t next_free;
};

struct handle_table {
  struct handle_entry *entries; /* entry 0 is never used: handle 0 names nothing */
  uint32_t size, free_head;
};

static void free_table(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct handle_table *t = data;
  free(t->entries);
  free(t);
}

static struct handle_table *table_of(napi_env env) {
  struct handle_table *t = NULL;
  if (napi_get_instance_data(env, (void **)&t) == napi_ok && t) return t;
  t = calloc(1, sizeof *t);
  if (!t) return NULL;
  if (napi_set_instance_data(env, t, free_table, NULL) != napi_ok) {
    free(t);
    return NULL;
  }
  return t;
}

/* Gives `r` a handle JavaScript can answer it by; 0 when out of memory. */
static double hold(napi_env env, struct sb_req *r) {
  struct handle_table *t = table_of(env);
  if (!t) return 0;
  if (t->free_head == 0) {
    uint32_t size = t->size ? t->size * 2 : 64;
    if (size - 1 > MAX_INDEX) return 0;
    struct handle_entry *grown = realloc(t->entries, size * sizeof *grown);
    if (!grown) return 0;
    memset(grown + t->size, 0, (size - t->size) * sizeof *grown);
    /* The new entries, each to the next, the last to none; entry 0 stays out of the list. */
    for (uint32_t i = t->size ? t->size : 1; i < size; i++) {
      grown[i].next_free = i + 1 < size ? i + 1 : 0;
      if (grown[i].generation == 0) grown[i].generation = 1;
    }
    t->free_head = t->size ? t->size : 1;
    t->entries = grown;
    t->size = size;
  }
  uint32_t index = t->free_head;
  struct handle_entry *e = &t->entries[index];
  t->free_head = e->next_free;
  e->req = r;
  r->handle = index;
  return (double)e->generation * INDEX_SPAN + index;
}

/* The request's entry is free again, under a new generation. */
static void release(napi_env env, struct sb_req *r) {
  struct handle_table *t = table_of(env);
  if (!t || r->handle == 0 || r->handle >= t->size) return;
  struct handle_entry *e = &t->entries[r->handle];
  e->req = NULL;
  e->generation = e->generation >= MAX_GENERATION ? 1 : e->generation + 1;
  e->next_free = t->free_head;
  t->free_head = r->handle;
  r->handle = 0;
}

/* The request a handle names, or NULL: answered already, or never one of ours. */
struct sb_req *sb_req_of(napi_env env, napi_value handle) {
  double h = sb_num(env, handle);
  struct handle_table *t = table_of(env);
  if (!t || !(h >= INDEX_SPAN)) return NULL;
  double generation = (double)(uint64_t)(h / INDEX_SPAN);
  double index = h - generation * INDEX_SPAN;
  if (index < 1 || index >= t->size || index != (double)(uint32_t)index) return NULL;
  struct handle_entry *e = &t->entries[(uint32_t)index];
  if (!e->req || (double)e->generation != generation) return NULL;
  return e->req;
}

/* Answered: its handle names nothing from now on, and its memory goes. */
void sb_answered(napi_env env, struct sb_req *r) {
  release(env, r);
  sb_free_req(r);
}

/*
 * Answers `err` to every request of `m` JavaScript still holds, before the session they belong
 * to is destroyed (dispose): their memory would otherwise be lost, and a late answer would
 * write through a freed session. Later answers find no request.
 */
void sb_answer_all(napi_env env, struct sb_mount *m, int err) {
  struct handle_table *t = table_of(env);
  if (!t) return;
  for (uint32_t i = 1; i < t->size; i++) {
    struct sb_req *r = t->entries[i].req;
    if (!r || r->mount != m) continue;
    if (r->req) fuse_reply_err(r->req, err);
    sb_answered(env, r);
  }
}

int sb_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "splitbrain-fuse: too few arguments");
    return -1;
  }
  return 0;
}

double sb_num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

napi_value sb_number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

napi_value sb_boolean(napi_env env, int v) {
  napi_value out;
  napi_get_boolean(env, v != 0, &out);
  return out;
}

struct sb_mount *sb_mount_of(napi_env env, napi_value v) {
  void *p = NULL;
  napi_get_value_external(env, v, &p);
  return p;
}

int sb_bytes_of(napi_env env, napi_value v, char **data, size_t *len) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer) {
    napi_throw_type_error(env, NULL, "splitbrain-fuse: expected a Buffer");
    return -1;
  }
  void *d;
  napi_get_buffer_info(env, v, &d, len);
  *data = d;
  return 0;
}

/* A Float64Array's numbers; NULL (with a JS exception) when `v` is not one. Empty is not NULL. */
static const double empty_doubles[1];
const double *sb_float64s(napi_env env, napi_value v, size_t *count) {
  napi_typedarray_type type;
  size_t length = 0, offset;
  void *data = NULL;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, NULL, "splitbrain-fuse: expected a Float64Array");
    return NULL;
  }
  *count = length;
  return length == 0 || data == NULL ? empty_doubles : data;
}

/* { NAME: first, NEXT: first + 1, ... }: an enum's values by name, for JavaScript. */
napi_value sb_names(napi_env env, const char *const *names, int first, int count) {
  napi_value out;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  for (int i = 0; i < count; i++) napi_set_named_property(env, out, names[i], sb_number(env, first + i));
  return out;
}

static napi_value bytes(napi_env env, const char *data, size_t len, napi_value undefined) {
  if (!data) return undefined;
  napi_value out;
  void *copy;
  napi_create_buffer_copy(env, len, data, &copy, &out);
  return out;
}

static void free_data(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/*
 * A view of the slot's first `len` bytes (a Uint8Array: N-API has no Buffer over an existing
 * ArrayBuffer in Node 20); the slot's ArrayBuffer is made at its first use and kept.
 */
static napi_value slot_view(napi_env env, struct sb_slot *slot, size_t len, size_t size) {
  napi_value ab, out;
  if (slot->ab == NULL || napi_get_reference_value(env, slot->ab, &ab) != napi_ok || ab == NULL) {
    if (napi_create_external_arraybuffer(env, slot->mem, size, free_data, NULL, &ab) != napi_ok) return NULL;
    napi_create_reference(env, ab, 1, &slot->ab);
  }
  if (napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &out) != napi_ok) return NULL;
  return out;
}

/* The request's data for JavaScript: a write's without a copy; NULL when out of memory. */
static napi_value data_of(napi_env env, struct sb_req *r, napi_value undefined) {
  if (r->slot) return slot_view(env, r->slot, r->data_len, (size_t)r->mount->max_write);
  if (!r->data) return undefined;
  if (r->op != OP_WRITE) return bytes(env, r->data, r->data_len, undefined);
  /* Written data is handed over without a copy; the buffer owns it from here. */
  napi_value out;
  if (napi_create_external_buffer(env, r->data_len, r->data, free_data, NULL, &out) != napi_ok) return NULL;
  r->data = NULL;
  return out;
}

static napi_value setattr_of(napi_env env, struct sb_req *r, napi_value undefined) {
  if (r->op != OP_SETATTR) return undefined;
  napi_value ab, out;
  void *raw;
  napi_create_arraybuffer(env, sizeof r->setattr, &raw, &ab);
  memcpy(raw, r->setattr, sizeof r->setattr);
  napi_create_typedarray(env, napi_float64_array, SETATTR_SLOTS, ab, 0, &out);
  return out;
}

/*
 * A request's arguments, passed positionally in this order: binding.ts makes the object
 * (FuseRequest) with one literal, which V8 builds in its final shape at once. Defining the
 * properties from here cost a string-table lookup and a shape transition per property per
 * request (the lookups alone were 2 % of the mount's CPU in an untar, perf; a request the mount
 * answers itself took 43-45 us, now 38-41).
 */
enum field {
  FIELD_HANDLE, FIELD_OP, FIELD_INO, FIELD_UID, FIELD_GID, FIELD_PID, FIELD_FH, FIELD_INO2, FIELD_MODE, FIELD_RDEV, FIELD_FLAGS, FIELD_SIZE,
  FIELD_OFFSET, FIELD_MASK, FIELD_NLOOKUP, FIELD_DATASYNC, FIELD_NOTIFY, FIELD_NAME, FIELD_NAME2, FIELD_DATA, FIELD_SETATTR, FIELD_FH2, FIELD_OFFSET2, FIELD_COUNT,
};

/* Calls the mount's JavaScript handler with `r` (from the session loop, or the end-of-session call). */
void sb_call_dispatch(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  struct sb_req *r = data;
  if (!env) { /* the function is being torn down: answer what is left */
    if (r->req) fuse_reply_err(r->req, EIO);
    sb_free_req(r);
    return;
  }
  napi_value undefined, result;
  napi_get_undefined(env, &undefined);
  double handle = 0;
  if (r->req && (handle = hold(env, r)) == 0) {
    fuse_reply_err(r->req, ENOMEM);
    sb_free_req(r);
    return;
  }
  napi_value values[FIELD_COUNT];
  values[FIELD_HANDLE] = sb_number(env, handle);
  values[FIELD_OP] = sb_number(env, r->op);
  values[FIELD_INO] = sb_number(env, (double)r->ino);
  values[FIELD_UID] = sb_number(env, r->uid);
  values[FIELD_GID] = sb_number(env, r->gid);
  values[FIELD_PID] = sb_number(env, r->pid);
  values[FIELD_FH] = sb_number(env, r->has_fh ? (double)r->fh : -1);
  values[FIELD_INO2] = sb_number(env, (double)r->ino2);
  values[FIELD_MODE] = sb_number(env, r->mode);
  values[FIELD_RDEV] = sb_number(env, r->rdev);
  values[FIELD_FLAGS] = sb_number(env, r->flags);
  values[FIELD_SIZE] = sb_number(env, r->size);
  values[FIELD_OFFSET] = sb_number(env, r->offset);
  values[FIELD_MASK] = sb_number(env, r->mask);
  values[FIELD_NLOOKUP] = sb_number(env, r->nlookup);
  values[FIELD_DATASYNC] = sb_boolean(env, r->datasync != 0);
  values[FIELD_NOTIFY] = sb_boolean(env, r->wants_notify);
  values[FIELD_NAME] = bytes(env, r->name, r->name_len, undefined);
  values[FIELD_NAME2] = bytes(env, r->name2, r->name2_len, undefined);
  values[FIELD_DATA] = data_of(env, r, undefined);
  values[FIELD_SETATTR] = setattr_of(env, r, undefined);
  values[FIELD_FH2] = sb_number(env, r->fh2);
  values[FIELD_OFFSET2] = sb_number(env, r->offset2);
  if (values[FIELD_DATA] == NULL) {
    if (r->req) {
      fuse_reply_err(r->req, ENOMEM);
      sb_answered(env, r);
    } else {
      sb_free_req(r);
    }
    return;
  }
  /* Forget and destroy need no answer: freed now. The others keep only their slot until answered. */
  if (!r->req) {
    sb_free_req(r);
  } else {
    free(r->name); r->name = NULL;
    free(r->name2); r->name2 = NULL;
    free(r->data); r->data = NULL;
  }
  if (napi_call_function(env, undefined, js_cb, FIELD_COUNT, values, &result) != napi_ok) {
    /* The handler threw: JavaScript has reported it; the request was answered or will be. */
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
  }
}

/* Calls the JavaScript handler with the request now (we are on the JS thread, in the session loop). */
void sb_deliver(struct sb_mount *m, struct sb_req *r) {
  napi_handle_scope scope;
  napi_value handler;
  if (napi_open_handle_scope(m->env, &scope) != napi_ok) {
    if (r->req) fuse_reply_err(r->req, EIO);
    sb_free_req(r);
    return;
  }
  if (napi_get_reference_value(m->env, m->handler, &handler) != napi_ok || handler == NULL) {
    if (r->req) fuse_reply_err(r->req, EIO);
    sb_free_req(r);
  } else {
    sb_call_dispatch(m->env, handler, NULL, r);
  }
  napi_close_handle_scope(m->env, scope);
}

void sb_call_fenced(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  double *id = data;
  if (env) {
    napi_value undefined, result, arg = sb_number(env, *id);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, js_cb, 1, &arg, &result);
  }
  free(id);
}
