/*
 * The notifier: cache invalidations, page cache stores and poll wakeups, queued by JavaScript
 * and sent in order by a thread of their own. An invalidation may block in the kernel until a
 * request on the same directory is answered (a store, until a read of the same pages is), and
 * answers come from the JS thread, so it must never send them. A fence tells JavaScript
 * (through a thread-safe function) that every note before it went; `notesSent` says how far the
 * thread got without one.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include "sb-fuse.h"

static void send_note(struct sb_mount *m, struct sb_note *n) {
  /* ENOENT: the kernel no longer knows the node or name; nothing to invalidate. */
  switch (n->kind) {
    case NOTE_INVAL_INODE:
      fuse_lowlevel_notify_inval_inode(m->se, n->ino, n->off, n->len);
      break;
    case NOTE_INVAL_ENTRY:
      /*
       * Invalidating a name drops its dentry, and with it whatever is mounted there (a sidecar
       * binds the device tree over the slave's /dev): where the kernel can, the name only
       * expires, and is looked up again at its next use, mounts kept (Linux >= 6.2).
       */
      if (m->expire_only) fuse_lowlevel_notify_expire_entry(m->se, n->ino, n->name, n->name_len, FUSE_LL_EXPIRE_ONLY);
      else fuse_lowlevel_notify_inval_entry(m->se, n->ino, n->name, n->name_len);
      break;
    case NOTE_DELETE:
      fuse_lowlevel_notify_delete(m->se, n->ino, n->child, n->name, n->name_len);
      break;
    case NOTE_POLL:
      fuse_lowlevel_notify_poll(n->ph);
      break;
    case NOTE_STORE: {
      struct fuse_bufvec data = FUSE_BUFVEC_INIT(n->name_len);
      data.buf[0].mem = n->name;
      fuse_lowlevel_notify_store(m->se, n->ino, (off_t)n->off, &data, 0);
      break;
    }
    case NOTE_FENCE:
      break;
  }
}

static void *note_main(void *arg) {
  struct sb_mount *m = arg;
  for (;;) {
    pthread_mutex_lock(&m->lock);
    while (!m->head && !m->stopping) pthread_cond_wait(&m->wake, &m->lock);
    struct sb_note *n = m->head;
    if (n) {
      m->head = n->next;
      if (!m->head) m->tail = NULL;
    }
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->lock);
    if (!n) {
      if (stopping) return NULL;
      continue;
    }
    if (!stopping) send_note(m, n);
    __atomic_store_n(&m->notes_sent, n->seq, __ATOMIC_RELEASE);
    if (n->kind == NOTE_POLL) fuse_pollhandle_destroy(n->ph);
    if (n->kind == NOTE_FENCE) {
      double *id = malloc(sizeof *id);
      if (id) {
        *id = n->fence;
        if (napi_call_threadsafe_function(m->fenced, id, napi_tsfn_blocking) != napi_ok) free(id);
      }
    }
    free(n->name);
    free(n);
  }
}

int sb_notifier_start(struct sb_mount *m) {
  if (pthread_create(&m->note_thread, NULL, note_main, m) != 0) return -1;
  m->note_started = 1;
  return 0;
}

/* Sends nothing more, drops what is queued (poll handles destroyed, fences answered), joins. */
void sb_notifier_stop(struct sb_mount *m) {
  if (!m->note_started) return;
  pthread_mutex_lock(&m->lock);
  m->stopping = 1;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->lock);
  pthread_join(m->note_thread, NULL);
  m->note_started = 0;
}

static uint64_t queue_note(struct sb_mount *m, struct sb_note *n) {
  pthread_mutex_lock(&m->lock);
  uint64_t seq = n->seq = ++m->notes_queued;
  if (m->tail) m->tail->next = n;
  else m->head = n;
  m->tail = n;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->lock);
  return seq;
}

/* The mount named by a call's first argument, if it still takes notes (NULL after dispose). */
static struct sb_mount *live_mount(napi_env env, napi_value v) {
  struct sb_mount *m = sb_mount_of(env, v);
  return m && !m->disposed ? m : NULL;
}

/* invalInode(mount, node, offset, length) */
napi_value sb_inval_inode(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (sb_get_args(env, info, 4, argv)) return NULL;
  struct sb_mount *m = live_mount(env, argv[0]);
  if (!m) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = NOTE_INVAL_INODE;
  n->ino = (uint64_t)sb_num(env, argv[1]);
  n->off = (int64_t)sb_num(env, argv[2]);
  n->len = (int64_t)sb_num(env, argv[3]);
  queue_note(m, n);
  return NULL;
}

/* invalEntry(mount, parent, name) / notifyDelete(mount, parent, child, name) */
/* A note of `kind` holding a copy of the bytes of JavaScript value `v` (a name, or data to store); NULL on failure. */
static struct sb_note *note_with_bytes(napi_env env, napi_value v, enum sb_note_kind kind) {
  char *bytes;
  size_t len;
  if (sb_bytes_of(env, v, &bytes, &len)) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n || sb_copy_into(&n->name, &n->name_len, bytes, len)) { free(n); return NULL; }
  n->kind = kind;
  return n;
}

static napi_value entry_note(napi_env env, napi_callback_info info, enum sb_note_kind kind) {
  napi_value argv[4];
  size_t want = kind == NOTE_DELETE ? 4 : 3;
  if (sb_get_args(env, info, want, argv)) return NULL;
  struct sb_mount *m = live_mount(env, argv[0]);
  if (!m) return NULL;
  struct sb_note *n = note_with_bytes(env, argv[want - 1], kind);
  if (!n) return NULL;
  n->ino = (uint64_t)sb_num(env, argv[1]);
  if (kind == NOTE_DELETE) n->child = (uint64_t)sb_num(env, argv[2]);
  queue_note(m, n);
  return NULL;
}

napi_value sb_inval_entry(napi_env env, napi_callback_info info) { return entry_note(env, info, NOTE_INVAL_ENTRY); }
napi_value sb_notify_delete(napi_env env, napi_callback_info info) { return entry_note(env, info, NOTE_DELETE); }

/*
 * storeData(mount, node, offset, data): the bytes go into the node's page cache (a copy, sent in
 * order with the invalidations). Pages it covers from their start to their end, or to the end of
 * the file, become up to date: a read of them asks the filesystem nothing. Returns the note's
 * place in the queue (notesSent says when it went); undefined after dispose.
 */
napi_value sb_store_data(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (sb_get_args(env, info, 4, argv)) return NULL;
  struct sb_mount *m = live_mount(env, argv[0]);
  if (!m) return NULL;
  struct sb_note *n = note_with_bytes(env, argv[3], NOTE_STORE);
  if (!n) return NULL;
  n->ino = (uint64_t)sb_num(env, argv[1]);
  n->off = (int64_t)sb_num(env, argv[2]);
  napi_value seq;
  napi_create_double(env, (double)queue_note(m, n), &seq);
  return seq;
}

/* notesSent(mount): the place in the queue (storeData's number) of the last note sent, 0 before any. */
napi_value sb_notes_sent(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sb_get_args(env, info, 1, argv)) return NULL;
  struct sb_mount *m = sb_mount_of(env, argv[0]);
  napi_value sent;
  napi_create_double(env, m ? (double)__atomic_load_n(&m->notes_sent, __ATOMIC_ACQUIRE) : 0, &sent);
  return sent;
}

/* notifyPoll(mount, fh): the file became ready; a poll(2) waiting on it asks again. */
napi_value sb_notify_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_mount *m = live_mount(env, argv[0]);
  if (!m) return NULL;
  struct fuse_pollhandle *ph = sb_take_poll(m, (uint64_t)sb_num(env, argv[1]));
  if (!ph) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) {
    fuse_pollhandle_destroy(ph);
    return NULL;
  }
  n->kind = NOTE_POLL;
  n->ph = ph;
  queue_note(m, n);
  return NULL;
}

/* fence(mount, id): `fenced(id)` is called once every invalidation queued before it was sent. */
napi_value sb_fence(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_mount *m = live_mount(env, argv[0]);
  if (!m) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = NOTE_FENCE;
  n->fence = sb_num(env, argv[1]);
  queue_note(m, n);
  return NULL;
}
