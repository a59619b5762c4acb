/*
 * The module: mount, unmount, dispose and ref, and its exports: those, the replies and notes,
 * and the constants JavaScript shares with C (ops, attribute slots, setattr slots and bits, open
 * flags),
 * so binding.ts copies no number.
 *
 * A mount's life: mount() (session, kernel mount, thread-safe functions, the notifier, the
 * descriptor watched) -> unmount() (lazily detached; the session ends with a DESTROY dispatch)
 * -> dispose() (requests still held answered, the notifier joined, the session destroyed). The
 * struct itself goes with the JavaScript object that names it (its finalizer), so a call with
 * a disposed mount finds it marked disposed, never freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sb-fuse.h"

static char *string_of(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static int flag_of(napi_env env, napi_value config, const char *name) {
  napi_value v;
  bool flag = false;
  if (napi_get_named_property(env, config, name, &v) == napi_ok) napi_get_value_bool(env, v, &flag);
  return flag;
}

/* The JavaScript object naming the mount is gone: a disposed mount's memory goes with it. */
static void finalize_mount(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct sb_mount *m = data;
  if (m->disposed) sb_free_mount(m);
  /* Else it is still mounted and serving (its handle and poll hold it): kept, as the session is. */
}

/* Gives back what the mount holds of JavaScript: its async context, references and calls. */
static void release_calls(napi_env env, struct sb_mount *m, napi_threadsafe_function_release_mode mode) {
  if (m->async) napi_async_destroy(env, m->async);
  if (m->handler) napi_delete_reference(env, m->handler);
  if (m->resource) napi_delete_reference(env, m->resource);
  if (m->dispatch) napi_release_threadsafe_function(m->dispatch, mode);
  if (m->fenced) napi_release_threadsafe_function(m->fenced, mode);
  m->async = NULL;
  m->handler = m->resource = NULL;
  m->dispatch = m->fenced = NULL;
}

/*
 * Undoes a mount that failed part way, in reverse: what was made is unmade, nothing leaks, and
 * the kernel has no mount left behind. Throws `message` with `code`.
 */
static napi_value fail_mount(napi_env env, struct sb_mount *m, const char *code, const char *message) {
  sb_session_stop(m);
  sb_notifier_stop(m);
  release_calls(env, m, napi_tsfn_abort);
  if (m->se) {
    if (m->mounted) fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
  }
  sb_free_mount(m);
  napi_throw_error(env, code, message);
  return NULL;
}

/*
 * mount(mountPath, optionString, config {posixAcl, writeback, cacheSymlinks, autoInvalData, maxWrite, killPriv, flock}, dispatch, fenced):
 * returns the mount (an external) once the kernel has it; throws with libfuse's reason if not.
 */
static napi_value do_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (sb_get_args(env, info, 5, argv)) return NULL;
  struct sb_mount *m = calloc(1, sizeof *m);
  if (!m) {
    napi_throw_error(env, "ENOMEM", "splitbrain-fuse: out of memory");
    return NULL;
  }
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->wake, NULL);
  m->posix_acl = flag_of(env, argv[2], "posixAcl");
  m->writeback = flag_of(env, argv[2], "writeback");
  m->cache_symlinks = flag_of(env, argv[2], "cacheSymlinks");
  m->auto_inval = flag_of(env, argv[2], "autoInvalData");
  m->kill_priv = flag_of(env, argv[2], "killPriv");
  m->flock = flag_of(env, argv[2], "flock");
  m->max_write = 1 << 20;
  napi_value v;
  if (napi_get_named_property(env, argv[2], "maxWrite", &v) == napi_ok) {
    double d = sb_num(env, v);
    if (d >= 4096 && d <= (1 << 20)) m->max_write = (int)d;
  }

  char *path = string_of(env, argv[0]);
  char *opts = string_of(env, argv[1]);
  if (!path || !opts) {
    free(path);
    free(opts);
    return fail_mount(env, m, "ENOMEM", "splitbrain-fuse: out of memory");
  }
  char *fuse_argv[] = {"splitbrain", "-o", opts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(opts[0] ? 3 : 1, fuse_argv);
  m->se = fuse_session_new(&args, &sb_ll_ops, sizeof sb_ll_ops, m);
  fuse_opt_free_args(&args);
  free(opts);
  if (!m->se) {
    free(path);
    return fail_mount(env, m, "EINVAL", "splitbrain-fuse: libfuse refused the options (see its message above)");
  }
  int mounted = fuse_session_mount(m->se, path);
  free(path);
  if (mounted != 0) return fail_mount(env, m, "EIO", "splitbrain-fuse: mount failed (see libfuse's message above)");
  m->mounted = 1;

  napi_value name, resource;
  uv_loop_t *loop;
  if (napi_create_string_utf8(env, "splitbrain-fuse", NAPI_AUTO_LENGTH, &name) != napi_ok
      || napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, sb_call_dispatch, &m->dispatch) != napi_ok
      || napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, sb_call_fenced, &m->fenced) != napi_ok
      || napi_create_object(env, &resource) != napi_ok
      || napi_create_reference(env, resource, 1, &m->resource) != napi_ok
      || napi_create_reference(env, argv[3], 1, &m->handler) != napi_ok
      || napi_async_init(env, resource, name, &m->async) != napi_ok
      || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    return fail_mount(env, m, "EIO", "splitbrain-fuse: cannot set up the mount's calls into JavaScript");
  }
  /* The end-of-session message is the only use of `dispatch`: it must not keep Node alive. */
  napi_unref_threadsafe_function(env, m->dispatch);
  m->env = env;
  if (sb_notifier_start(m) != 0) return fail_mount(env, m, "EAGAIN", "splitbrain-fuse: cannot start the notifier thread");
  if (sb_session_start(m, loop) != 0) return fail_mount(env, m, "EIO", "splitbrain-fuse: cannot watch /dev/fuse");
  napi_value out;
  if (napi_create_external(env, m, finalize_mount, NULL, &out) != napi_ok) {
    return fail_mount(env, m, "ENOMEM", "splitbrain-fuse: out of memory");
  }
  return out;
}

/*
 * unmount(mount): detaches the mount lazily, as `fusermount -uz` does, and closes our end of it
 * (requests the kernel still holds fail with ENOTCONN). Never waits: DESTROY is dispatched on
 * a later turn of the loop, after which JavaScript calls dispose().
 */
static napi_value do_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sb_get_args(env, info, 1, argv)) return NULL;
  struct sb_mount *m = sb_mount_of(env, argv[0]);
  if (!m || m->unmounted || m->disposed) return NULL;
  m->unmounted = 1;
  fuse_session_exit(m->se);
  sb_end_session(m); /* stop watching the descriptor before unmounting closes it */
  fuse_session_unmount(m->se);
  return NULL;
}

/*
 * dispose(mount): after DESTROY. Answers what JavaScript still holds (ENOTCONN: it would find
 * no session to answer through), joins the notifier, destroys the session, frees the write
 * slots (each with its ArrayBuffer, once JavaScript holds no view of it) and releases the calls
 * into JavaScript. The struct goes with the mount's JavaScript object.
 */
static napi_value do_dispose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sb_get_args(env, info, 1, argv)) return NULL;
  struct sb_mount *m = sb_mount_of(env, argv[0]);
  if (!m || m->disposed) return NULL;
  m->disposed = 1;
  sb_answer_all(env, m, ENOTCONN);
  sb_notifier_stop(m);
  sb_session_stop(m); /* never unmounted: stop before the descriptor goes */
  if (!m->unmounted) fuse_session_unmount(m->se);
  fuse_session_destroy(m->se);
  m->se = NULL;
  for (int i = 0; i < WRITE_SLOTS; i++) {
    if (m->slots[i].ab) napi_delete_reference(env, m->slots[i].ab);
    else free(m->slots[i].mem);
    m->slots[i].ab = NULL;
    m->slots[i].mem = NULL;
  }
  release_calls(env, m, napi_tsfn_release);
  return NULL;
}

/* ref(mount, keepAlive): whether the mount keeps Node's event loop alive. */
static napi_value do_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_mount *m = sb_mount_of(env, argv[0]);
  if (!m || m->disposed) return NULL;
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

#define SB_NAME(name) #name,
static const char *const op_names[] = {SB_OPS(SB_NAME)};
static const char *const attr_names[] = {SB_ATTRS(SB_NAME)};
static const char *const setattr_names[] = {SB_SETATTRS(SB_NAME)};
#undef SB_NAME
static const char *const open_flag_names[] = {"DIRECT_IO", "KEEP_CACHE", "NONSEEKABLE", "CACHE_DIR", "NOFLUSH"};

/* { DIRECT_IO: 1, KEEP_CACHE: 2, ... }: the open flags' bits by name. */
static napi_value open_flags(napi_env env) {
  static const int bits[] = {OPEN_DIRECT_IO, OPEN_KEEP_CACHE, OPEN_NONSEEKABLE, OPEN_CACHE_DIR, OPEN_NOFLUSH};
  napi_value out;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) napi_set_named_property(env, out, open_flag_names[i], sb_number(env, bits[i]));
  return out;
}

/* libfuse's FUSE_SET_ATTR_* bits of a setattr's TO_SET, by name. */
static napi_value setattr_bits(napi_env env) {
  static const char *const names[] = {"MODE", "UID", "GID", "SIZE", "ATIME", "MTIME", "ATIME_NOW", "MTIME_NOW", "CTIME"};
  static const int bits[] = {FUSE_SET_ATTR_MODE, FUSE_SET_ATTR_UID, FUSE_SET_ATTR_GID, FUSE_SET_ATTR_SIZE,
    FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_ATIME_NOW, FUSE_SET_ATTR_MTIME_NOW, FUSE_SET_ATTR_CTIME};
  napi_value out;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) napi_set_named_property(env, out, names[i], sb_number(env, bits[i]));
  return out;
}

#define FN(js, c) {js, NULL, c, NULL, NULL, NULL, napi_default, NULL}
#define VALUE(js, v) {js, NULL, NULL, NULL, NULL, v, napi_enumerable, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    FN("mount", do_mount), FN("unmount", do_unmount), FN("dispose", do_dispose), FN("ref", do_ref),
    FN("replyErr", sb_reply_err), FN("replyEntry", sb_reply_entry), FN("replyCreate", sb_reply_create),
    FN("replyAttr", sb_reply_attr), FN("replyOpen", sb_reply_open), FN("replyWrite", sb_reply_write), FN("replyLseek", sb_reply_lseek),
    FN("replyBuf", sb_reply_buf), FN("replyIov", sb_reply_iov), FN("replyReadlink", sb_reply_readlink),
    FN("replyXattrSize", sb_reply_xattr_size), FN("replyStatfs", sb_reply_statfs), FN("replyDir", sb_reply_dir),
    FN("replyPoll", sb_reply_poll), FN("interrupted", sb_interrupted),
    FN("invalInode", sb_inval_inode), FN("invalEntry", sb_inval_entry), FN("notifyDelete", sb_notify_delete), FN("storeData", sb_store_data), FN("notesSent", sb_notes_sent),
    FN("notifyPoll", sb_notify_poll), FN("fence", sb_fence),
    VALUE("ops", sb_names(env, op_names, OP_LOOKUP, OP_COUNT - OP_LOOKUP)),
    VALUE("attrSlot", sb_names(env, attr_names, 0, ATTR_SLOTS)),
    VALUE("attrSlots", sb_number(env, ATTR_SLOTS)),
    VALUE("setattrSlot", sb_names(env, setattr_names, 0, SETATTR_SLOTS)),
    VALUE("setattrBits", setattr_bits(env)),
    VALUE("openFlags", open_flags(env)),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
