/*
 * splitbrain's FUSE binding: libfuse 3's low-level API for Node, as an N-API module.
 *
 * Why our own (docs/architecture.md "The FUSE binding"): the published bindings bind libfuse's
 * high-level, path-based API, which cannot invalidate the kernel's caches (so every stat must
 * cross into JavaScript), cannot hand readdir's attributes to the kernel, and holds a libfuse
 * thread blocked while JavaScript answers. The low-level API needs none of that.
 *
 * Threads and hops, the fewest we could manage:
 *  - no session thread: /dev/fuse is non-blocking and watched by Node's own event loop (a
 *    uv_poll handle), so the JS thread reads each request and calls its JavaScript handler
 *    directly, with no hop between threads. An earlier version read on a thread of its own and
 *    queued requests to JavaScript through a thread-safe function: that hop (a wakeup of the
 *    JS thread through uv_async) cost ~50 us of every call on a 2-core machine;
 *  - JavaScript answers by calling reply*(), which writes the answer to /dev/fuse from the JS
 *    thread: no hop back;
 *  - one notifier thread sends cache invalidations. They may block in the kernel until a request
 *    on the same directory is answered, and that answer comes from the JS thread, so they must
 *    never be sent from it.
 *
 * A request's handle in JavaScript is its address; it is freed when answered, so JavaScript
 * answers each request exactly once (mount/fuse-adapter.ts guarantees it).
 */
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sys/statvfs.h>
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <fcntl.h>
#include <pthread.h>
#include <uv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

enum op {
  OP_LOOKUP = 1, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE,
  OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_STATFS, OP_SETXATTR, OP_GETXATTR,
  OP_LISTXATTR, OP_REMOVEXATTR, OP_ACCESS, OP_CREATE, OP_READDIRPLUS, OP_DESTROY, OP_POLL,
};

/*
 * Memory for written data, reused from write to write: a fresh buffer per write (1 GiB of
 * malloc'd external buffers per GiB written) made V8 run a full garbage collection every few
 * MiB, a quarter of the mount's CPU in a sequential write. Each slot is wrapped in one
 * ArrayBuffer once, and a write hands JavaScript a view of it, valid until it is answered.
 */
#define WRITE_SLOTS 8
struct sb_slot {
  char *mem;    /* max_write bytes, owned by the ArrayBuffer once `ab` exists */
  napi_ref ab;
  int busy;     /* a request holds it until answered */
};

/* One kernel request on its way to JavaScript. Names and data are copies owned by it. */
struct sb_req {
  fuse_req_t req; /* NULL for forget and destroy: nothing to answer */
  int op;
  uint64_t ino, ino2, fh;
  double a, b, c;
  uint32_t uid, gid, pid;
  char *name, *name2, *data;
  size_t name_len, name2_len, data_len;
  double setattr[9]; /* mode, uid, gid, size, atime s, ns, mtime s, ns, to_set */
  struct sb_slot *slot; /* a write's data, when it went into a slot rather than `data` */
};

/* A cache invalidation waiting for the notifier thread; fence: tell JavaScript we got here. */
struct sb_note {
  struct sb_note *next;
  int kind; /* 1 inode, 2 entry, 3 delete, 4 fence, 5 poll (ph: notified, then destroyed) */
  struct fuse_pollhandle *ph;
  uint64_t ino, child;
  int64_t off, len;
  char *name;
  size_t name_len;
  double fence;
};

struct sb_mount {
  struct fuse_session *se;
  pthread_t note_thread;
  /* The JS thread's side: /dev/fuse watched by Node's loop, and the handler it calls. */
  napi_env env;
  uv_poll_t poll;
  int polling;
  struct fuse_buf buf;
  napi_ref handler, resource;
  napi_async_context async;
  /* Only to tell JavaScript the session ended, from outside a request (see end_session). */
  napi_threadsafe_function dispatch, fenced;
  int posix_acl, writeback, cache_symlinks, max_write;
  int expire_only; /* the kernel can expire a name without detaching what is mounted on it */
  int unmounted, disposed;
  struct sb_slot slots[WRITE_SLOTS];
  /* the notifier's queue */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct sb_note *head, *tail;
  int stopping;
  /* Poll handles the kernel gave with FUSE_POLL, one per open file (the latest), JS thread only. */
  struct sb_poll *polls;
};

/* The kernel waits in poll(2) on open file `fh`: notify `ph` when it becomes ready. */
struct sb_poll {
  struct sb_poll *next;
  uint64_t fh;
  struct fuse_pollhandle *ph;
};

/* Takes the poll handle kept for `fh` out of the table (NULL if none): the caller owns it. */
static struct fuse_pollhandle *take_poll(struct sb_mount *m, uint64_t fh) {
  for (struct sb_poll **at = &m->polls; *at; at = &(*at)->next) {
    if ((*at)->fh != fh) continue;
    struct sb_poll *p = *at;
    struct fuse_pollhandle *ph = p->ph;
    *at = p->next;
    free(p);
    return ph;
  }
  return NULL;
}

/* ---------------------------------------------------------------- requests, on the JS thread */

static void call_dispatch(napi_env env, napi_value js_cb, void *context, void *data);
static void free_req(struct sb_req *r);

/* Calls the JavaScript handler with the request now (we are on the JS thread, in process_buf). */
static void deliver(struct sb_mount *m, struct sb_req *r) {
  napi_handle_scope scope;
  napi_value handler;
  if (napi_open_handle_scope(m->env, &scope) != napi_ok) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free_req(r);
    return;
  }
  if (napi_get_reference_value(m->env, m->handler, &handler) != napi_ok || handler == NULL) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free_req(r);
  } else {
    call_dispatch(m->env, handler, NULL, r);
  }
  napi_close_handle_scope(m->env, scope);
}

static struct sb_req *new_req(fuse_req_t req, int op, uint64_t ino) {
  struct sb_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->req = req;
  r->op = op;
  r->ino = ino;
  if (req) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    r->uid = ctx->uid;
    r->gid = ctx->gid;
    r->pid = (uint32_t)ctx->pid;
  }
  return r;
}

static int copy_into(char **to, size_t *len, const char *from, size_t n) {
  *to = malloc(n ? n : 1);
  if (!*to) return -1;
  memcpy(*to, from, n);
  *len = n;
  return 0;
}

static int copy_name(char **to, size_t *len, const char *name) {
  return copy_into(to, len, name, strlen(name));
}

static void free_req(struct sb_req *r) {
  free(r->name);
  free(r->name2);
  free(r->data);
  if (r->slot) r->slot->busy = 0;
  free(r);
}

/* A free slot for `size` bytes of written data, or NULL (more writes in hand: they get `data`). */
static struct sb_slot *take_slot(struct sb_mount *m, size_t size) {
  if (size > (size_t)m->max_write || m->disposed) return NULL;
  for (int i = 0; i < WRITE_SLOTS; i++) {
    struct sb_slot *slot = &m->slots[i];
    if (slot->busy) continue;
    if (!slot->mem && !(slot->mem = malloc((size_t)m->max_write))) return NULL;
    slot->busy = 1;
    return slot;
  }
  return NULL;
}

/* Hands the request to JavaScript; answers ENOMEM itself when it cannot. */
static void send_req(struct sb_req *r, fuse_req_t req) {
  if (!r) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  deliver(fuse_req_userdata(req), r);
}

static void with_name(fuse_req_t req, int op, fuse_ino_t parent, const char *name) {
  struct sb_req *r = new_req(req, op, parent);
  if (r && copy_name(&r->name, &r->name_len, name)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  struct sb_mount *m = userdata;
  /* Large transfers: libfuse 3 raises the kernel's max_pages to fit max_write. */
  conn->max_write = (unsigned)m->max_write;
  conn->max_readahead = conn->max_readahead < (unsigned)m->max_write ? conn->max_readahead : (unsigned)m->max_write;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  /* Always readdirplus: one round trip fills the kernel's names and attributes of a directory. */
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (m->cache_symlinks && (conn->capable & FUSE_CAP_CACHE_SYMLINKS)) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  else conn->want &= ~FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  m->expire_only = (conn->capable & FUSE_CAP_EXPIRE_ONLY) != 0;
  if (m->posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL)) conn->want |= FUSE_CAP_POSIX_ACL;
  if (m->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  /* Locks stay local to the master's kernel, as on any FUSE mount without lock support. */
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void ll_destroy(void *userdata) { (void)userdata; }

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_LOOKUP, parent, name); }

static void queue_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  struct sb_mount *m = fuse_req_userdata(req);
  struct sb_req *r = new_req(NULL, OP_FORGET, ino);
  if (!r) return; /* the node stays known: a leak, never a wrong answer */
  r->a = (double)nlookup;
  deliver(m, r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  queue_forget(req, ino, nlookup);
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; i++) queue_forget(req, forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_GETATTR, ino);
  if (r) r->a = fi ? (double)fi->fh : -1;
  send_req(r, req);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_SETATTR, ino);
  if (r) {
    r->a = fi ? (double)fi->fh : -1;
    double *s = r->setattr;
    s[0] = attr->st_mode; s[1] = attr->st_uid; s[2] = attr->st_gid; s[3] = (double)attr->st_size;
    s[4] = (double)attr->st_atim.tv_sec; s[5] = (double)attr->st_atim.tv_nsec;
    s[6] = (double)attr->st_mtim.tv_sec; s[7] = (double)attr->st_mtim.tv_nsec;
    s[8] = to_set;
  }
  send_req(r, req);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { send_req(new_req(req, OP_READLINK, ino), req); }

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  struct sb_req *r = new_req(req, OP_MKNOD, parent);
  if (r) { r->a = mode; r->b = (double)rdev; }
  if (r && copy_name(&r->name, &r->name_len, name)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  struct sb_req *r = new_req(req, OP_MKDIR, parent);
  if (r) r->a = mode;
  if (r && copy_name(&r->name, &r->name_len, name)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_UNLINK, parent, name); }
static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_RMDIR, parent, name); }

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  struct sb_req *r = new_req(req, OP_SYMLINK, parent);
  if (r && (copy_name(&r->name, &r->name_len, name) || copy_name(&r->data, &r->data_len, link))) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  struct sb_req *r = new_req(req, OP_RENAME, parent);
  if (r) { r->ino2 = newparent; r->a = flags; }
  if (r && (copy_name(&r->name, &r->name_len, name) || copy_name(&r->name2, &r->name2_len, newname))) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  struct sb_req *r = new_req(req, OP_LINK, ino);
  if (r) r->ino2 = newparent;
  if (r && copy_name(&r->name, &r->name_len, newname)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void with_fi(fuse_req_t req, int op, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, op, ino);
  if (r) { r->a = (double)fi->fh; r->b = fi->flags; r->fh = fi->fh; }
  send_req(r, req);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_OPEN, ino);
  if (r) r->a = fi->flags;
  send_req(r, req);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_READ, ino);
  if (r) { r->a = (double)fi->fh; r->b = (double)size; r->c = (double)off; }
  send_req(r, req);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_WRITE, ino);
  if (r) {
    r->a = (double)fi->fh;
    r->c = (double)off;
    r->slot = take_slot(fuse_req_userdata(req), size);
    if (r->slot) {
      memcpy(r->slot->mem, buf, size);
      r->data_len = size;
    } else if (copy_into(&r->data, &r->data_len, buf, size)) {
      free_req(r);
      r = NULL;
    }
  }
  send_req(r, req);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { with_fi(req, OP_FLUSH, ino, fi); }
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  /* No poll(2) waits on a released file: its handle goes with it. */
  struct fuse_pollhandle *ph = take_poll(fuse_req_userdata(req), fi->fh);
  if (ph) fuse_pollhandle_destroy(ph);
  with_fi(req, OP_RELEASE, ino, fi);
}

/*
 * poll(2) on an open file: JavaScript answers what it is ready for (replyPoll), and, when the
 * kernel asked to be told (ph), calls notifyPoll(fh) once it becomes ready. The handle stays
 * here, never in JavaScript: the latest one per file, the one before destroyed.
 */
static void ll_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph) {
  struct sb_mount *m = fuse_req_userdata(req);
  if (ph) {
    struct fuse_pollhandle *old = take_poll(m, fi->fh);
    if (old) fuse_pollhandle_destroy(old);
    struct sb_poll *p = malloc(sizeof *p);
    if (!p) {
      fuse_pollhandle_destroy(ph);
      fuse_reply_err(req, ENOMEM);
      return;
    }
    p->fh = fi->fh;
    p->ph = ph;
    p->next = m->polls;
    m->polls = p;
  }
  struct sb_req *r = new_req(req, OP_POLL, ino);
  if (r) { r->a = (double)fi->fh; r->b = ph != NULL; r->fh = fi->fh; }
  send_req(r, req);
}
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_OPENDIR, ino);
  if (r) r->a = fi->flags;
  send_req(r, req);
}
static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { with_fi(req, OP_RELEASEDIR, ino, fi); }

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_FSYNC, ino);
  if (r) { r->a = (double)fi->fh; r->b = datasync; }
  send_req(r, req);
}

static void readdir_as(int op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, op, ino);
  if (r) { r->a = (double)fi->fh; r->b = (double)size; r->c = (double)off; }
  send_req(r, req);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_as(OP_READDIR, req, ino, size, off, fi);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_as(OP_READDIRPLUS, req, ino, size, off, fi);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { send_req(new_req(req, OP_STATFS, ino), req); }

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  struct sb_req *r = new_req(req, OP_SETXATTR, ino);
  if (r) r->a = flags;
  if (r && (copy_name(&r->name, &r->name_len, name) || copy_into(&r->data, &r->data_len, value, size))) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  struct sb_req *r = new_req(req, OP_GETXATTR, ino);
  if (r) r->b = (double)size;
  if (r && copy_name(&r->name, &r->name_len, name)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  struct sb_req *r = new_req(req, OP_LISTXATTR, ino);
  if (r) r->b = (double)size;
  send_req(r, req);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) { with_name(req, OP_REMOVEXATTR, ino, name); }

static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  struct sb_req *r = new_req(req, OP_ACCESS, ino);
  if (r) r->a = mask;
  send_req(r, req);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  struct sb_req *r = new_req(req, OP_CREATE, parent);
  if (r) { r->a = mode; r->b = fi->flags; }
  if (r && copy_name(&r->name, &r->name_len, name)) { free_req(r); r = NULL; }
  send_req(r, req);
}

static const struct fuse_lowlevel_ops ll_ops = {
  .init = ll_init, .destroy = ll_destroy, .lookup = ll_lookup, .forget = ll_forget,
  .forget_multi = ll_forget_multi, .getattr = ll_getattr, .setattr = ll_setattr,
  .readlink = ll_readlink, .mknod = ll_mknod, .mkdir = ll_mkdir, .unlink = ll_unlink,
  .rmdir = ll_rmdir, .symlink = ll_symlink, .rename = ll_rename, .link = ll_link,
  .open = ll_open, .read = ll_read, .write = ll_write, .flush = ll_flush, .release = ll_release,
  .fsync = ll_fsync, .opendir = ll_opendir, .readdir = ll_readdir, .releasedir = ll_releasedir,
  .statfs = ll_statfs, .setxattr = ll_setxattr, .getxattr = ll_getxattr,
  .listxattr = ll_listxattr, .removexattr = ll_removexattr, .access = ll_access,
  .create = ll_create, .readdirplus = ll_readdirplus, .poll = ll_poll,
};

/*
 * The session is over (unmounted from outside, or by us): stop watching /dev/fuse and tell
 * JavaScript, on a later turn of the loop (we may be inside a JavaScript call: unmount()).
 */
static void end_session(struct sb_mount *m) {
  if (!m->polling) return;
  m->polling = 0;
  uv_poll_stop(&m->poll);
  uv_close((uv_handle_t *)&m->poll, NULL);
  struct sb_req *r = new_req(NULL, OP_DESTROY, 0);
  if (r && napi_call_threadsafe_function(m->dispatch, r, napi_tsfn_nonblocking) != napi_ok) free_req(r);
}

/* Requests read per wakeup at most, so that replies from the bus are not held up behind a burst. */
#define BURST 64

/*
 * /dev/fuse is readable: read and process what the kernel has queued, calling the handlers
 * directly. In a callback scope, as Node calls JavaScript from its loop: promises and
 * process.nextTick callbacks the handlers queued run when it closes.
 */
static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct sb_mount *m = handle->data;
  if (!m->polling) return;
  if (status < 0) {
    fuse_session_exit(m->se);
    end_session(m);
    return;
  }
  napi_env env = m->env;
  napi_handle_scope scope;
  napi_callback_scope callback_scope;
  napi_value resource;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, m->resource, &resource);
  int scoped = napi_open_callback_scope(env, resource, m->async, &callback_scope) == napi_ok;
  for (int i = 0; i < BURST && !fuse_session_exited(m->se); i++) {
    int res = fuse_session_receive_buf(m->se, &m->buf);
    if (res == -EINTR) continue;
    if (res == -EAGAIN) break;
    if (res <= 0) { /* 0: the kernel ended the session (ENODEV); else a read error */
      fuse_session_exit(m->se);
      break;
    }
    fuse_session_process_buf(m->se, &m->buf);
  }
  if (fuse_session_exited(m->se)) end_session(m);
  if (scoped) napi_close_callback_scope(env, callback_scope);
  napi_close_handle_scope(env, scope);
}

/* ---------------------------------------------------------------- notifier thread */

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
    /* ENOENT: the kernel no longer knows the node or name; nothing to invalidate. */
    if (!stopping) {
      if (n->kind == 1) fuse_lowlevel_notify_inval_inode(m->se, n->ino, n->off, n->len);
      /*
       * Invalidating a name drops its dentry, and with it whatever is mounted there (a sidecar
       * binds the device tree over the slave's /dev): where the kernel can, the name only expires,
       * and is looked up again at its next use, mounts kept (Linux >= 6.2).
       */
      else if (n->kind == 2 && m->expire_only) fuse_lowlevel_notify_expire_entry(m->se, n->ino, n->name, n->name_len, FUSE_LL_EXPIRE_ONLY);
      else if (n->kind == 2) fuse_lowlevel_notify_inval_entry(m->se, n->ino, n->name, n->name_len);
      else if (n->kind == 3) fuse_lowlevel_notify_delete(m->se, n->ino, n->child, n->name, n->name_len);
      else if (n->kind == 5) fuse_lowlevel_notify_poll(n->ph);
    }
    if (n->kind == 5) fuse_pollhandle_destroy(n->ph);
    if (n->kind == 4) {
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

static void queue_note(struct sb_mount *m, struct sb_note *n) {
  pthread_mutex_lock(&m->lock);
  if (m->tail) m->tail->next = n;
  else m->head = n;
  m->tail = n;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- JS thread side */

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "splitbrain-fuse: " #call " failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value buffer_of(napi_env env, const char *data, size_t len) {
  napi_value out;
  void *copy;
  if (!data) {
    napi_get_undefined(env, &out);
    return out;
  }
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

/* dispatch(handle, op, ino, uid, gid, pid, a, b, c, name, name2, data, ino2, setattr) */
static void call_dispatch(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  struct sb_req *r = data;
  if (!env) { /* the function is being torn down: answer what is left */
    if (r->req) fuse_reply_err(r->req, EIO);
    free_req(r);
    return;
  }
  napi_value args[14], undefined, result;
  napi_get_undefined(env, &undefined);
  args[0] = number(env, (double)(uintptr_t)r);
  args[1] = number(env, r->op);
  args[2] = number(env, (double)r->ino);
  args[3] = number(env, r->uid);
  args[4] = number(env, r->gid);
  args[5] = number(env, r->pid);
  args[6] = number(env, r->a);
  args[7] = number(env, r->b);
  args[8] = number(env, r->c);
  args[9] = buffer_of(env, r->name, r->name_len);
  args[10] = buffer_of(env, r->name2, r->name2_len);
  if (r->slot) {
    struct sb_mount *m = fuse_req_userdata(r->req);
    args[11] = slot_view(env, r->slot, r->data_len, (size_t)m->max_write);
    if (args[11] == NULL) {
      fuse_reply_err(r->req, ENOMEM);
      free_req(r);
      return;
    }
  } else if (r->data) {
    /* Written data is handed over without a copy; the buffer owns it from here. */
    if (r->op == OP_WRITE) {
      napi_create_external_buffer(env, r->data_len, r->data, free_data, NULL, &args[11]);
      r->data = NULL;
    } else {
      args[11] = buffer_of(env, r->data, r->data_len);
    }
  } else {
    args[11] = undefined;
  }
  args[12] = number(env, (double)r->ino2);
  if (r->op == OP_SETATTR) {
    napi_value ab, arr;
    void *raw;
    napi_create_arraybuffer(env, sizeof r->setattr, &raw, &ab);
    memcpy(raw, r->setattr, sizeof r->setattr);
    napi_create_typedarray(env, napi_float64_array, 9, ab, 0, &arr);
    args[13] = arr;
  } else {
    args[13] = undefined;
  }
  /* Forget and destroy need no answer: free them now. Others are freed when answered. */
  if (!r->req) {
    free_req(r);
  } else {
    free(r->name); r->name = NULL;
    free(r->name2); r->name2 = NULL;
    free(r->data); r->data = NULL;
  }
  if (napi_call_function(env, undefined, js_cb, 14, args, &result) != napi_ok) {
    /* The handler threw: JavaScript has reported it; the request was answered or will be. */
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
  }
}

static void call_fenced(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  double *id = data;
  if (env) {
    napi_value undefined, result, arg = number(env, *id);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, js_cb, 1, &arg, &result);
  }
  free(id);
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "splitbrain-fuse: too few arguments");
    return -1;
  }
  return 0;
}

static double num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

static struct sb_mount *mount_of(napi_env env, napi_value v) {
  void *p = NULL;
  napi_get_value_external(env, v, &p);
  return p;
}

static struct sb_req *req_of(napi_env env, napi_value v) {
  return (struct sb_req *)(uintptr_t)num(env, v);
}

/* Attributes from JavaScript: a Float64Array of ATTR_SLOTS per node (see binding.ts). */
#define ATTR_SLOTS 15
static void fill_stat(struct stat *st, const double *a) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)a[0];
  st->st_mode = (mode_t)a[1];
  st->st_nlink = (nlink_t)a[2];
  st->st_uid = (uid_t)a[3];
  st->st_gid = (gid_t)a[4];
  st->st_rdev = (dev_t)a[5];
  st->st_size = (off_t)a[6];
  st->st_blocks = (blkcnt_t)a[7];
  st->st_blksize = (blksize_t)a[8];
  st->st_atim.tv_sec = (time_t)a[9];
  st->st_atim.tv_nsec = (long)a[10];
  st->st_mtim.tv_sec = (time_t)a[11];
  st->st_mtim.tv_nsec = (long)a[12];
  st->st_ctim.tv_sec = (time_t)a[13];
  st->st_ctim.tv_nsec = (long)a[14];
}

/* A Float64Array's numbers; NULL (with a JS exception) when `v` is not one. Empty is not NULL. */
static const double empty_doubles[1];
static const double *float64s(napi_env env, napi_value v, size_t *count) {
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

static int bytes_of(napi_env env, napi_value v, char **data, size_t *len) {
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

static void entry_param(struct fuse_entry_param *e, double node, const double *attr, double entry_t, double attr_t) {
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)node;
  e->generation = 1;
  e->entry_timeout = entry_t;
  e->attr_timeout = attr_t;
  if (attr) fill_stat(&e->attr, attr);
}

static void answered(struct sb_req *r) { free_req(r); }

/* replyErr(handle, errno) */
static napi_value reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_err(r->req, (int)num(env, argv[1]));
  answered(r);
  return NULL;
}

/* replyEntry(handle, node, attr, entryTimeout, attrTimeout): node 0 caches "no such name". */
static napi_value reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, argv)) return NULL;
  size_t n = 0;
  const double *attr = float64s(env, argv[2], &n);
  if (!attr || n < ATTR_SLOTS) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  struct fuse_entry_param e;
  entry_param(&e, num(env, argv[1]), attr, num(env, argv[3]), num(env, argv[4]));
  if (e.ino == 0) e.attr_timeout = 0;
  fuse_reply_entry(r->req, &e);
  answered(r);
  return NULL;
}

static void open_flags(struct fuse_file_info *fi, int flags) {
  fi->direct_io = (flags & 1) != 0;
  fi->keep_cache = (flags & 2) != 0;
  fi->nonseekable = (flags & 4) != 0;
  fi->cache_readdir = (flags & 8) != 0;
}

/* replyCreate(handle, node, attr, entryTimeout, attrTimeout, fh, openFlags) */
static napi_value reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (get_args(env, info, 7, argv)) return NULL;
  size_t n = 0;
  const double *attr = float64s(env, argv[2], &n);
  if (!attr || n < ATTR_SLOTS) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  struct fuse_entry_param e;
  entry_param(&e, num(env, argv[1]), attr, num(env, argv[3]), num(env, argv[4]));
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)num(env, argv[5]);
  open_flags(&fi, (int)num(env, argv[6]));
  if (fuse_reply_create(r->req, &e, &fi) == -ENOENT) {
    /* The caller was interrupted: the kernel never saw the handle. JavaScript releases it. */
  }
  answered(r);
  return NULL;
}

/* replyAttr(handle, attr, timeout) */
static napi_value reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  size_t n = 0;
  const double *attr = float64s(env, argv[1], &n);
  if (!attr || n < ATTR_SLOTS) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  struct stat st;
  fill_stat(&st, attr);
  fuse_reply_attr(r->req, &st, num(env, argv[2]));
  answered(r);
  return NULL;
}

/* replyOpen(handle, fh, openFlags) */
static napi_value reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)num(env, argv[1]);
  open_flags(&fi, (int)num(env, argv[2]));
  fuse_reply_open(r->req, &fi);
  answered(r);
  return NULL;
}

/* replyWrite(handle, count) */
static napi_value reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_write(r->req, (size_t)num(env, argv[1]));
  answered(r);
  return NULL;
}

/* replyBuf(handle, buffer, length): read data, a link target, an xattr value or list. */
static napi_value reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  char *data;
  size_t len;
  if (bytes_of(env, argv[1], &data, &len)) return NULL;
  size_t want = (size_t)num(env, argv[2]);
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_buf(r->req, data, want < len ? want : len);
  answered(r);
  return NULL;
}

/*
 * replyIov(handle, buffers): read data in several pieces (a read across two read-ahead chunks),
 * handed to the kernel in one reply with no copy into one buffer first.
 */
#define MAX_IOV 8
static napi_value reply_iov(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || count > MAX_IOV) {
    napi_throw_type_error(env, NULL, "splitbrain-fuse: expected an array of at most 8 Buffers");
    return NULL;
  }
  struct iovec iov[MAX_IOV];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    char *data;
    size_t len;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || bytes_of(env, item, &data, &len)) return NULL;
    iov[i].iov_base = data;
    iov[i].iov_len = len;
  }
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_iov(r->req, iov, (int)count);
  answered(r);
  return NULL;
}

/* replyReadlink(handle, target): the target as bytes, without a NUL. */
static napi_value reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  char *data;
  size_t len;
  if (bytes_of(env, argv[1], &data, &len)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  char *target = malloc(len + 1);
  if (!target) {
    fuse_reply_err(r->req, ENOMEM);
  } else {
    memcpy(target, data, len);
    target[len] = 0;
    fuse_reply_readlink(r->req, target);
    free(target);
  }
  answered(r);
  return NULL;
}

/* replyXattrSize(handle, size) */
static napi_value reply_xattr_size(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_xattr(r->req, (size_t)num(env, argv[1]));
  answered(r);
  return NULL;
}

/* replyStatfs(handle, [bsize, frsize, blocks, bfree, bavail, files, ffree, namemax]) */
static napi_value reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  size_t n = 0;
  const double *s = float64s(env, argv[1], &n);
  if (!s || n < 8) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = (unsigned long)s[0];
  st.f_frsize = (unsigned long)s[1];
  st.f_blocks = (fsblkcnt_t)s[2];
  st.f_bfree = (fsblkcnt_t)s[3];
  st.f_bavail = (fsblkcnt_t)s[4];
  st.f_files = (fsfilcnt_t)s[5];
  st.f_ffree = (fsfilcnt_t)s[6];
  st.f_favail = (fsfilcnt_t)s[6];
  st.f_namemax = (unsigned long)s[7];
  fuse_reply_statfs(r->req, &st);
  answered(r);
  return NULL;
}

/*
 * replyDir(handle, plus, size, names, attrs, nodes, offsets, entryTimeout, attrTimeout):
 * entries from the start of `names` (Buffers) until `size` bytes are full. Returns how many
 * went in: with plus, the kernel holds a lookup of each of those nodes (but '.' and '..').
 */
static napi_value reply_dir(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (get_args(env, info, 9, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  bool plus = false;
  napi_get_value_bool(env, argv[1], &plus);
  size_t size = (size_t)num(env, argv[2]);
  uint32_t count = 0;
  napi_get_array_length(env, argv[3], &count);
  size_t n_attr = 0, n_nodes = 0, n_offs = 0;
  const double *attrs = float64s(env, argv[4], &n_attr);
  if (!attrs) return NULL;
  const double *nodes = float64s(env, argv[5], &n_nodes);
  if (!nodes) return NULL;
  const double *offs = float64s(env, argv[6], &n_offs);
  if (!offs) return NULL;
  if (n_attr < (size_t)count * ATTR_SLOTS || n_nodes < count || n_offs < count) {
    napi_throw_range_error(env, NULL, "splitbrain-fuse: replyDir arrays too short");
    return NULL;
  }
  double entry_t = num(env, argv[7]), attr_t = num(env, argv[8]);
  char *buf = malloc(size ? size : 1);
  if (!buf) {
    fuse_reply_err(r->req, ENOMEM);
    answered(r);
    return number(env, 0);
  }
  size_t used = 0;
  uint32_t added = 0;
  char name[NAME_MAX + 1];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    char *bytes;
    size_t len;
    napi_get_element(env, argv[3], i, &item);
    if (bytes_of(env, item, &bytes, &len)) { free(buf); return NULL; }
    if (len > NAME_MAX) len = NAME_MAX;
    memcpy(name, bytes, len);
    name[len] = 0;
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      entry_param(&e, nodes[i], attrs + (size_t)i * ATTR_SLOTS, entry_t, attr_t);
      need = fuse_add_direntry_plus(r->req, buf + used, size - used, name, &e, (off_t)offs[i]);
    } else {
      struct stat st;
      fill_stat(&st, attrs + (size_t)i * ATTR_SLOTS);
      need = fuse_add_direntry(r->req, buf + used, size - used, name, &st, (off_t)offs[i]);
    }
    if (need > size - used) break;
    used += need;
    added++;
  }
  fuse_reply_buf(r->req, buf, used);
  free(buf);
  answered(r);
  return number(env, added);
}

/* invalInode(mount, node, offset, length) */
static napi_value inval_inode(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = 1;
  n->ino = (uint64_t)num(env, argv[1]);
  n->off = (int64_t)num(env, argv[2]);
  n->len = (int64_t)num(env, argv[3]);
  queue_note(mount_of(env, argv[0]), n);
  return NULL;
}

/* invalEntry(mount, parent, name) / notifyDelete(mount, parent, child, name) */
static napi_value entry_note(napi_env env, napi_callback_info info, int kind) {
  napi_value argv[4];
  size_t want = kind == 3 ? 4 : 3;
  if (get_args(env, info, want, argv)) return NULL;
  char *bytes;
  size_t len;
  if (bytes_of(env, argv[want - 1], &bytes, &len)) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n || copy_into(&n->name, &n->name_len, bytes, len)) { free(n); return NULL; }
  n->kind = kind;
  n->ino = (uint64_t)num(env, argv[1]);
  if (kind == 3) n->child = (uint64_t)num(env, argv[2]);
  queue_note(mount_of(env, argv[0]), n);
  return NULL;
}

static napi_value inval_entry(napi_env env, napi_callback_info info) { return entry_note(env, info, 2); }
static napi_value notify_delete(napi_env env, napi_callback_info info) { return entry_note(env, info, 3); }

/* replyPoll(handle, revents) */
static napi_value reply_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = req_of(env, argv[0]);
  fuse_reply_poll(r->req, (unsigned)num(env, argv[1]));
  answered(r);
  return NULL;
}

/* notifyPoll(mount, fh): the file became ready; a poll(2) waiting on it asks again. */
static napi_value notify_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_mount *m = mount_of(env, argv[0]);
  struct fuse_pollhandle *ph = take_poll(m, (uint64_t)num(env, argv[1]));
  if (!ph) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) {
    fuse_pollhandle_destroy(ph);
    return NULL;
  }
  n->kind = 5;
  n->ph = ph;
  queue_note(m, n);
  return NULL;
}

/* fence(mount, id): `fenced(id)` is called once every invalidation queued before it was sent. */
static napi_value fence(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_note *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = 4;
  n->fence = num(env, argv[1]);
  queue_note(mount_of(env, argv[0]), n);
  return NULL;
}

static char *string_of(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/*
 * mount(mountPath, optionString, config {posixAcl, writeback, cacheSymlinks, maxWrite}, dispatch, fenced):
 * returns the mount (an external) once the kernel has it; throws with libfuse's reason if not.
 */
static napi_value do_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, argv)) return NULL;
  char *path = string_of(env, argv[0]);
  char *opts = string_of(env, argv[1]);
  struct sb_mount *m = calloc(1, sizeof *m);
  if (!path || !opts || !m) {
    free(path); free(opts); free(m);
    napi_throw_error(env, "ENOMEM", "splitbrain-fuse: out of memory");
    return NULL;
  }
  napi_value v;
  bool flag = false;
  if (napi_get_named_property(env, argv[2], "posixAcl", &v) == napi_ok) napi_get_value_bool(env, v, &flag);
  m->posix_acl = flag;
  flag = false;
  if (napi_get_named_property(env, argv[2], "writeback", &v) == napi_ok) napi_get_value_bool(env, v, &flag);
  m->writeback = flag;
  flag = false;
  if (napi_get_named_property(env, argv[2], "cacheSymlinks", &v) == napi_ok) napi_get_value_bool(env, v, &flag);
  m->cache_symlinks = flag;
  m->max_write = 1 << 20;
  if (napi_get_named_property(env, argv[2], "maxWrite", &v) == napi_ok) {
    double d = num(env, v);
    if (d >= 4096) m->max_write = (int)d;
  }
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->wake, NULL);

  char *fuse_argv[] = {"splitbrain", "-o", opts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(opts[0] ? 3 : 1, fuse_argv);
  m->se = fuse_session_new(&args, &ll_ops, sizeof ll_ops, m);
  if (!m->se) {
    free(path); free(opts); free(m);
    napi_throw_error(env, "EINVAL", "splitbrain-fuse: libfuse refused the options (see its message above)");
    return NULL;
  }
  if (fuse_session_mount(m->se, path) != 0) {
    fuse_session_destroy(m->se);
    free(path); free(opts); free(m);
    napi_throw_error(env, "EIO", "splitbrain-fuse: mount failed (see libfuse's message above)");
    return NULL;
  }
  free(path);
  free(opts);
  napi_value name;
  napi_create_string_utf8(env, "splitbrain-fuse", NAPI_AUTO_LENGTH, &name);
  CHECK(env, napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, call_dispatch, &m->dispatch));
  CHECK(env, napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_fenced, &m->fenced));
  /* The end-of-session message is the only use of `dispatch`: it must not keep Node alive. */
  napi_unref_threadsafe_function(env, m->dispatch);
  napi_value resource;
  uv_loop_t *loop;
  CHECK(env, napi_create_object(env, &resource));
  CHECK(env, napi_create_reference(env, resource, 1, &m->resource));
  CHECK(env, napi_create_reference(env, argv[3], 1, &m->handler));
  CHECK(env, napi_async_init(env, resource, name, &m->async));
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  m->env = env;
  int fd = fuse_session_fd(m->se);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (uv_poll_init(loop, &m->poll, fd) != 0) {
    napi_throw_error(env, "EIO", "splitbrain-fuse: cannot watch /dev/fuse");
    return NULL;
  }
  m->poll.data = m;
  m->polling = 1;
  uv_poll_start(&m->poll, UV_READABLE, on_readable);
  pthread_create(&m->note_thread, NULL, note_main, m);
  napi_value out;
  CHECK(env, napi_create_external(env, m, NULL, NULL, &out));
  return out;
}

/*
 * unmount(mount): detaches the mount lazily, as `fusermount -uz` does, and closes our end of it
 * (requests the kernel still holds fail with ENOTCONN). Never waits: OP_DESTROY is dispatched on
 * a later turn of the loop, after which JavaScript calls dispose().
 */
static napi_value do_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  struct sb_mount *m = mount_of(env, argv[0]);
  if (!m || m->unmounted) return NULL;
  m->unmounted = 1;
  fuse_session_exit(m->se);
  end_session(m); /* stop watching the descriptor before unmounting closes it */
  fuse_session_unmount(m->se);
  return NULL;
}

/* dispose(mount): after OP_DESTROY, joins the notifier thread and frees the session. */
static napi_value do_dispose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  struct sb_mount *m = mount_of(env, argv[0]);
  if (!m || m->disposed) return NULL;
  m->disposed = 1;
  pthread_mutex_lock(&m->lock);
  m->stopping = 1;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->lock);
  pthread_join(m->note_thread, NULL);
  if (!m->unmounted) fuse_session_unmount(m->se);
  fuse_session_destroy(m->se);
  free(m->buf.mem);
  m->buf.mem = NULL;
  /* A slot's memory goes with its ArrayBuffer, once JavaScript holds no view of it. */
  for (int i = 0; i < WRITE_SLOTS; i++) {
    if (m->slots[i].ab) napi_delete_reference(env, m->slots[i].ab);
    else free(m->slots[i].mem);
    m->slots[i].ab = NULL;
    m->slots[i].mem = NULL;
  }
  napi_async_destroy(env, m->async);
  napi_delete_reference(env, m->handler);
  napi_delete_reference(env, m->resource);
  napi_release_threadsafe_function(m->dispatch, napi_tsfn_release);
  napi_release_threadsafe_function(m->fenced, napi_tsfn_release);
  return NULL;
}

/* ref(mount, keepAlive): whether the mount keeps Node's event loop alive. */
static napi_value do_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  struct sb_mount *m = mount_of(env, argv[0]);
  bool keep = true;
  napi_get_value_bool(env, argv[1], &keep);
  /* The poll handle is what keeps Node running while mounted; fences are awaited by JavaScript. */
  if (keep) {
    if (m->polling) uv_ref((uv_handle_t *)&m->poll);
    napi_ref_threadsafe_function(env, m->fenced);
  } else {
    if (m->polling) uv_unref((uv_handle_t *)&m->poll);
    napi_unref_threadsafe_function(env, m->fenced);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mount", NULL, do_mount, NULL, NULL, NULL, napi_default, NULL},
    {"unmount", NULL, do_unmount, NULL, NULL, NULL, napi_default, NULL},
    {"dispose", NULL, do_dispose, NULL, NULL, NULL, napi_default, NULL},
    {"ref", NULL, do_ref, NULL, NULL, NULL, napi_default, NULL},
    {"replyErr", NULL, reply_err, NULL, NULL, NULL, napi_default, NULL},
    {"replyEntry", NULL, reply_entry, NULL, NULL, NULL, napi_default, NULL},
    {"replyCreate", NULL, reply_create, NULL, NULL, NULL, napi_default, NULL},
    {"replyAttr", NULL, reply_attr, NULL, NULL, NULL, napi_default, NULL},
    {"replyOpen", NULL, reply_open, NULL, NULL, NULL, napi_default, NULL},
    {"replyWrite", NULL, reply_write, NULL, NULL, NULL, napi_default, NULL},
    {"replyBuf", NULL, reply_buf, NULL, NULL, NULL, napi_default, NULL},
    {"replyIov", NULL, reply_iov, NULL, NULL, NULL, napi_default, NULL},
    {"replyReadlink", NULL, reply_readlink, NULL, NULL, NULL, napi_default, NULL},
    {"replyXattrSize", NULL, reply_xattr_size, NULL, NULL, NULL, napi_default, NULL},
    {"replyStatfs", NULL, reply_statfs, NULL, NULL, NULL, napi_default, NULL},
    {"replyDir", NULL, reply_dir, NULL, NULL, NULL, napi_default, NULL},
    {"invalInode", NULL, inval_inode, NULL, NULL, NULL, napi_default, NULL},
    {"invalEntry", NULL, inval_entry, NULL, NULL, NULL, napi_default, NULL},
    {"notifyDelete", NULL, notify_delete, NULL, NULL, NULL, napi_default, NULL},
    {"replyPoll", NULL, reply_poll, NULL, NULL, NULL, napi_default, NULL},
    {"notifyPoll", NULL, notify_poll, NULL, NULL, NULL, napi_default, NULL},
    {"fence", NULL, fence, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
