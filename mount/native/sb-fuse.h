/*
 * splitbrain's FUSE binding: libfuse 3's low-level API for Node, as an N-API module. This header
 * is what its files share; each file has one job:
 *
 *   records.c   the memory of requests (sb_req) and mounts (sb_mount)
 *   capture.c   the kernel's requests, copied into sb_req records (libfuse's ll_* callbacks)
 *   session.c   /dev/fuse read by Node's own event loop, each request processed at once
 *   crossing.c  into JavaScript: the dispatch call, request handles, the values both sides use
 *   replies.c   JavaScript's answers, written to /dev/fuse (reply*)
 *   notifier.c  cache invalidations, page cache stores and poll wakeups, sent from a thread of their own
 *   module.c    mount, unmount, dispose, and the module's exports (functions and constants)
 *
 * Why our own binding (docs/architecture.md "The FUSE binding"): the published bindings bind
 * libfuse's high-level, path-based API, which cannot invalidate the kernel's caches (so every
 * stat must cross into JavaScript), cannot hand readdir's attributes to the kernel, and holds a
 * libfuse thread blocked while JavaScript answers. The low-level API needs none of that.
 *
 * Threads and hops, the fewest we could manage:
 *  - no session thread: /dev/fuse is non-blocking and watched by Node's own event loop (a
 *    uv_poll handle), so the JS thread reads each request and calls its JavaScript handler
 *    directly. An earlier version read on a thread of its own and queued requests to
 *    JavaScript through a thread-safe function: that hop cost ~50 us of every call on 2 cores;
 *  - JavaScript answers by calling reply*(), which writes the answer from the JS thread;
 *  - one notifier thread sends cache invalidations. They may block in the kernel until a request
 *    on the same directory is answered, and that answer comes from the JS thread, so they must
 *    never be sent from it.
 */
#ifndef SB_FUSE_H
#define SB_FUSE_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

/*
 * The kernel's operations as JavaScript sees them. Exported to JavaScript by name (module.c's
 * `ops`), so mount/native/binding.ts copies no number. Append only: nothing else is numbered.
 */
#define SB_OPS(X)                                                                              \
  X(LOOKUP) X(FORGET) X(GETATTR) X(SETATTR) X(READLINK) X(MKNOD) X(MKDIR) X(UNLINK) X(RMDIR)    \
  X(SYMLINK) X(RENAME) X(LINK) X(OPEN) X(READ) X(WRITE) X(FLUSH) X(RELEASE) X(FSYNC)            \
  X(OPENDIR) X(READDIR) X(RELEASEDIR) X(STATFS) X(SETXATTR) X(GETXATTR) X(LISTXATTR)            \
  X(REMOVEXATTR) X(ACCESS) X(CREATE) X(READDIRPLUS) X(DESTROY) X(POLL) X(FSYNCDIR)            \
  X(FALLOCATE) X(LSEEK) X(COPY_FILE_RANGE) X(FLOCK)

#define SB_OP_ENUM(name) OP_##name,
enum sb_op { OP_NONE = 0, SB_OPS(SB_OP_ENUM) OP_COUNT };
#undef SB_OP_ENUM

/* Bits of an open or create reply (exported as `openFlags`). */
enum sb_open_flag {
  OPEN_DIRECT_IO = 1 << 0,
  OPEN_KEEP_CACHE = 1 << 1,
  OPEN_NONSEEKABLE = 1 << 2,
  OPEN_CACHE_DIR = 1 << 3,
  OPEN_NOFLUSH = 1 << 4,
};

/* What the notifier thread is asked to send. */
enum sb_note_kind {
  NOTE_INVAL_INODE = 1,
  NOTE_INVAL_ENTRY,
  NOTE_DELETE,
  NOTE_FENCE, /* nothing to send: tell JavaScript every note before it went */
  NOTE_POLL,  /* notify `ph`, then destroy it */
  NOTE_STORE, /* `name`'s bytes into the page cache of `ino` at `off` */
};

/*
 * Attributes from JavaScript: ATTR_SLOTS numbers per node, in this order (exported as
 * `attrSlots` and `attrSlot`): see sb_fill_stat.
 */
#define SB_ATTRS(X)                                                                            \
  X(INO) X(MODE) X(NLINK) X(UID) X(GID) X(RDEV) X(SIZE) X(BLOCKS) X(BLKSIZE) X(ATIME_S)          \
  X(ATIME_NS) X(MTIME_S) X(MTIME_NS) X(CTIME_S) X(CTIME_NS)
#define SB_ATTR_ENUM(name) ATTR_##name,
enum sb_attr { SB_ATTRS(SB_ATTR_ENUM) ATTR_SLOTS };
#undef SB_ATTR_ENUM

/* A setattr's values, in this order (exported as `setattrSlot`). */
#define SB_SETATTRS(X) X(MODE) X(UID) X(GID) X(SIZE) X(ATIME_S) X(ATIME_NS) X(MTIME_S) X(MTIME_NS) X(TO_SET)
#define SB_SETATTR_ENUM(name) SETATTR_##name,
enum sb_setattr { SB_SETATTRS(SB_SETATTR_ENUM) SETATTR_SLOTS };
#undef SB_SETATTR_ENUM

/*
 * Memory for written data, reused from write to write: a fresh buffer per write (1 GiB of
 * malloc'd external buffers per GiB written) made V8 run a full garbage collection every few
 * MiB, a quarter of the mount's CPU in a sequential write. Each slot is wrapped in one
 * ArrayBuffer once, and a write hands JavaScript a view of it, valid until it is answered.
 */
#define WRITE_SLOTS 8
struct sb_slot {
  char *mem; /* max_write bytes, owned by the ArrayBuffer once `ab` exists */
  napi_ref ab;
  int busy; /* a request holds it until answered */
};

/*
 * One kernel request on its way to JavaScript, its arguments by name (which fields an op has:
 * capture.c, and JavaScript's FuseRequest in binding.ts). Names and data are copies it owns.
 */
struct sb_req {
  struct sb_mount *mount;
  fuse_req_t req; /* NULL for forget and destroy: nothing to answer */
  enum sb_op op;
  uint32_t handle; /* its index in the handle table while JavaScript holds it, else 0 */
  uint64_t ino;    /* the node, or the parent directory of a name */
  uint64_t ino2;   /* rename, link: the new parent */
  uint64_t fh;     /* the open file or directory; -1 (as a double) when none was given */
  int has_fh;
  double mode, rdev, flags, size, offset, mask, nlookup, datasync;
  double fh2, offset2; /* copy_file_range: the file written, and where (ino2 its node) */
  int wants_notify; /* poll: the kernel asked to be told when the file is ready */
  uint32_t uid, gid, pid;
  char *name, *name2, *data;
  size_t name_len, name2_len, data_len;
  double setattr[SETATTR_SLOTS];
  struct sb_slot *slot; /* a write's data, when it went into a slot rather than `data` */
};

/* A cache invalidation waiting for the notifier thread. */
struct sb_note {
  struct sb_note *next;
  enum sb_note_kind kind;
  struct fuse_pollhandle *ph;
  uint64_t ino, child;
  int64_t off, len;
  char *name;
  size_t name_len;
  double fence;
  uint64_t seq; /* its place in the queue: 1, 2, ... */
};

/* The kernel waits in poll(2) on open file `fh`: notify `ph` when it becomes ready. */
struct sb_poll {
  struct sb_poll *next;
  uint64_t fh;
  struct fuse_pollhandle *ph;
};

struct sb_mount {
  struct fuse_session *se;
  pthread_t note_thread;
  int note_started;
  /* The JS thread's side: /dev/fuse watched by Node's loop, and the handler it calls. */
  napi_env env;
  uv_poll_t poll;
  int polling;
  struct fuse_buf buf;
  napi_ref handler, resource;
  napi_async_context async;
  /* Only to tell JavaScript the session ended, from outside a request (see sb_end_session). */
  napi_threadsafe_function dispatch, fenced;
  int posix_acl, writeback, cache_symlinks, max_write;
  int auto_inval;       /* the kernel drops a file's pages when an answer brings another mtime (capture.c) */
  int expire_only; /* the kernel can expire a name without detaching what is mounted on it */
  int kill_priv;        /* asked for: the filesystem drops set-id bits itself (session.c) */
  int flock;            /* flock(2) goes to the filesystem (FUSE_CAP_FLOCK_LOCKS), not the kernel's own table */
  int init_seen;        /* the first request (INIT) has been read */
  int mounted, unmounted, disposed;
  int poll_closing;     /* uv_close of `poll` not yet complete: `poll` lives in this struct */
  int free_when_closed; /* then free the struct (sb_free_mount) */
  struct sb_slot slots[WRITE_SLOTS];
  /* the notifier's queue */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct sb_note *head, *tail;
  int stopping;
  /* Poll handles the kernel gave with FUSE_POLL, one per open file (the latest), JS thread only. */
  struct sb_poll *polls;
  /* Notes queued so far (JS thread, under `lock`), and the place of the last one sent (notifier thread, atomic). */
  uint64_t notes_queued, notes_sent;
};

/* records.c */
struct sb_req *sb_new_req(struct sb_mount *m, fuse_req_t req, enum sb_op op, uint64_t ino);
void sb_free_req(struct sb_req *r);
int sb_copy_into(char **to, size_t *len, const char *from, size_t n);
void sb_free_mount(struct sb_mount *m);

/* capture.c */
extern const struct fuse_lowlevel_ops sb_ll_ops;
struct fuse_pollhandle *sb_take_poll(struct sb_mount *m, uint64_t fh);

/* session.c */
int sb_session_start(struct sb_mount *m, uv_loop_t *loop);
void sb_session_stop(struct sb_mount *m);
void sb_end_session(struct sb_mount *m);


/* crossing.c */
#define SB_CHECK(env, call)                                               \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "splitbrain-fuse: " #call " failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)
void sb_deliver(struct sb_mount *m, struct sb_req *r);
void sb_call_dispatch(napi_env env, napi_value js_cb, void *context, void *data);
void sb_call_fenced(napi_env env, napi_value js_cb, void *context, void *data);
struct sb_req *sb_req_of(napi_env env, napi_value handle);
void sb_answered(napi_env env, struct sb_req *r);
void sb_answer_all(napi_env env, struct sb_mount *m, int err);
int sb_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
double sb_num(napi_env env, napi_value v);
napi_value sb_number(napi_env env, double v);
napi_value sb_boolean(napi_env env, int v);
struct sb_mount *sb_mount_of(napi_env env, napi_value v);
int sb_bytes_of(napi_env env, napi_value v, char **data, size_t *len);
const double *sb_float64s(napi_env env, napi_value v, size_t *count);
napi_value sb_names(napi_env env, const char *const *names, int first, int count);

/* replies.c */
napi_value sb_reply_err(napi_env env, napi_callback_info info);
napi_value sb_reply_entry(napi_env env, napi_callback_info info);
napi_value sb_reply_create(napi_env env, napi_callback_info info);
napi_value sb_reply_attr(napi_env env, napi_callback_info info);
napi_value sb_reply_open(napi_env env, napi_callback_info info);
napi_value sb_reply_write(napi_env env, napi_callback_info info);
napi_value sb_reply_lseek(napi_env env, napi_callback_info info);
napi_value sb_reply_buf(napi_env env, napi_callback_info info);
napi_value sb_reply_iov(napi_env env, napi_callback_info info);
napi_value sb_reply_readlink(napi_env env, napi_callback_info info);
napi_value sb_reply_xattr_size(napi_env env, napi_callback_info info);
napi_value sb_reply_statfs(napi_env env, napi_callback_info info);
napi_value sb_reply_dir(napi_env env, napi_callback_info info);
napi_value sb_reply_poll(napi_env env, napi_callback_info info);
napi_value sb_interrupted(napi_env env, napi_callback_info info);

/* notifier.c */
int sb_notifier_start(struct sb_mount *m);
void sb_notifier_stop(struct sb_mount *m);
napi_value sb_inval_inode(napi_env env, napi_callback_info info);
napi_value sb_inval_entry(napi_env env, napi_callback_info info);
napi_value sb_notify_delete(napi_env env, napi_callback_info info);
napi_value sb_store_data(napi_env env, napi_callback_info info);
napi_value sb_notes_sent(napi_env env, napi_callback_info info);
napi_value sb_notify_poll(napi_env env, napi_callback_info info);
napi_value sb_fence(napi_env env, napi_callback_info info);

#endif
