/*
 * JavaScript's answers to the kernel's requests, each written to /dev/fuse from the JS thread.
 * Every reply names its request by handle (crossing.c) and returns false when the handle names
 * none (answered already, or its mount disposed): nothing is written then. A reply the kernel
 * did not take (the caller was interrupted) returns false too, which matters where an answer
 * hands the kernel something to give back: an open or create's file handle is then never
 * released by the kernel, so JavaScript releases it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include "sb-fuse.h"

static void fill_stat(struct stat *st, const double *a) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)a[ATTR_INO];
  st->st_mode = (mode_t)a[ATTR_MODE];
  st->st_nlink = (nlink_t)a[ATTR_NLINK];
  st->st_uid = (uid_t)a[ATTR_UID];
  st->st_gid = (gid_t)a[ATTR_GID];
  st->st_rdev = (dev_t)a[ATTR_RDEV];
  st->st_size = (off_t)a[ATTR_SIZE];
  st->st_blocks = (blkcnt_t)a[ATTR_BLOCKS];
  st->st_blksize = (blksize_t)a[ATTR_BLKSIZE];
  st->st_atim.tv_sec = (time_t)a[ATTR_ATIME_S];
  st->st_atim.tv_nsec = (long)a[ATTR_ATIME_NS];
  st->st_mtim.tv_sec = (time_t)a[ATTR_MTIME_S];
  st->st_mtim.tv_nsec = (long)a[ATTR_MTIME_NS];
  st->st_ctim.tv_sec = (time_t)a[ATTR_CTIME_S];
  st->st_ctim.tv_nsec = (long)a[ATTR_CTIME_NS];
}

static void entry_param(struct fuse_entry_param *e, double node, const double *attr, double entry_t, double attr_t) {
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)node;
  e->generation = 1;
  e->entry_timeout = entry_t;
  e->attr_timeout = attr_t;
  if (attr) fill_stat(&e->attr, attr);
}

static void file_info(struct fuse_file_info *fi, double fh, int flags) {
  memset(fi, 0, sizeof *fi);
  fi->fh = (uint64_t)fh;
  fi->direct_io = (flags & OPEN_DIRECT_IO) != 0;
  fi->keep_cache = (flags & OPEN_KEEP_CACHE) != 0;
  fi->nonseekable = (flags & OPEN_NONSEEKABLE) != 0;
  fi->cache_readdir = (flags & OPEN_CACHE_DIR) != 0;
  fi->noflush = (flags & OPEN_NOFLUSH) != 0;
}

/* Ends an answer: the request goes; true when the kernel took it (`sent` is libfuse's result). */
static napi_value done(napi_env env, struct sb_req *r, int sent) {
  sb_answered(env, r);
  return sb_boolean(env, sent == 0);
}

/* The attributes argument: NULL (with a JS exception) unless a Float64Array of ATTR_SLOTS. */
static const double *attrs_of(napi_env env, napi_value v) {
  size_t n = 0;
  const double *attr = sb_float64s(env, v, &n);
  if (attr && n < ATTR_SLOTS) {
    napi_throw_range_error(env, NULL, "splitbrain-fuse: attributes too short");
    return NULL;
  }
  return attr;
}

/* replyErr(handle, errno): 0 answers success with no data. */
napi_value sb_reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_err(r->req, (int)sb_num(env, argv[1])));
}

/* replyEntry(handle, node, attr, entryTimeout, attrTimeout): node 0 caches "no such name". */
napi_value sb_reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (sb_get_args(env, info, 5, argv)) return NULL;
  const double *attr = attrs_of(env, argv[2]);
  if (!attr) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  struct fuse_entry_param e;
  entry_param(&e, sb_num(env, argv[1]), attr, sb_num(env, argv[3]), sb_num(env, argv[4]));
  if (e.ino == 0) e.attr_timeout = 0;
  return done(env, r, fuse_reply_entry(r->req, &e));
}

/* replyCreate(handle, node, attr, entryTimeout, attrTimeout, fh, openFlags): false if not taken. */
napi_value sb_reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (sb_get_args(env, info, 7, argv)) return NULL;
  const double *attr = attrs_of(env, argv[2]);
  if (!attr) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  struct fuse_entry_param e;
  entry_param(&e, sb_num(env, argv[1]), attr, sb_num(env, argv[3]), sb_num(env, argv[4]));
  struct fuse_file_info fi;
  file_info(&fi, sb_num(env, argv[5]), (int)sb_num(env, argv[6]));
  return done(env, r, fuse_reply_create(r->req, &e, &fi));
}

/* replyAttr(handle, attr, timeout) */
napi_value sb_reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (sb_get_args(env, info, 3, argv)) return NULL;
  const double *attr = attrs_of(env, argv[1]);
  if (!attr) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  struct stat st;
  fill_stat(&st, attr);
  return done(env, r, fuse_reply_attr(r->req, &st, sb_num(env, argv[2])));
}

/* replyOpen(handle, fh, openFlags): false if not taken. */
napi_value sb_reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (sb_get_args(env, info, 3, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  struct fuse_file_info fi;
  file_info(&fi, sb_num(env, argv[1]), (int)sb_num(env, argv[2]));
  return done(env, r, fuse_reply_open(r->req, &fi));
}

/* replyWrite(handle, count) */
napi_value sb_reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_write(r->req, (size_t)sb_num(env, argv[1])));
}

/* replyLseek(handle, offset): where SEEK_DATA or SEEK_HOLE found it. */
napi_value sb_reply_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_lseek(r->req, (off_t)sb_num(env, argv[1])));
}

/* replyBuf(handle, buffer, length): read data, a link target, an xattr value or list. */
napi_value sb_reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (sb_get_args(env, info, 3, argv)) return NULL;
  char *data;
  size_t len;
  if (sb_bytes_of(env, argv[1], &data, &len)) return NULL;
  size_t want = (size_t)sb_num(env, argv[2]);
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_buf(r->req, data, want < len ? want : len));
}

/*
 * replyIov(handle, buffers): read data in several pieces (a read across two read-ahead chunks),
 * handed to the kernel in one reply with no copy into one buffer first.
 */
#define MAX_IOV 8
napi_value sb_reply_iov(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
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
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || sb_bytes_of(env, item, &data, &len)) return NULL;
    iov[i].iov_base = data;
    iov[i].iov_len = len;
  }
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_iov(r->req, iov, (int)count));
}

/* replyReadlink(handle, target): the target as bytes, without a NUL. */
napi_value sb_reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  char *data;
  size_t len;
  if (sb_bytes_of(env, argv[1], &data, &len)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  char *target = malloc(len + 1);
  if (!target) return done(env, r, fuse_reply_err(r->req, ENOMEM));
  memcpy(target, data, len);
  target[len] = 0;
  int sent = fuse_reply_readlink(r->req, target);
  free(target);
  return done(env, r, sent);
}

/* replyXattrSize(handle, size) */
napi_value sb_reply_xattr_size(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_xattr(r->req, (size_t)sb_num(env, argv[1])));
}

/* replyStatfs(handle, [bsize, frsize, blocks, bfree, bavail, files, ffree, namemax]) */
napi_value sb_reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  size_t n = 0;
  const double *s = sb_float64s(env, argv[1], &n);
  if (!s) return NULL;
  if (n < 8) {
    napi_throw_range_error(env, NULL, "splitbrain-fuse: replyStatfs wants 8 numbers");
    return NULL;
  }
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
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
  return done(env, r, fuse_reply_statfs(r->req, &st));
}

/*
 * replyDir(handle, plus, size, names, attrs, nodes, offsets, entryTimeout, attrTimeout):
 * entries from the start of `names` (Buffers) until `size` bytes are full. Returns how many
 * went in (0 for a request answered already): with plus, the kernel holds a lookup of each of
 * those nodes (but '.' and '..').
 */
napi_value sb_reply_dir(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (sb_get_args(env, info, 9, argv)) return NULL;
  bool plus = false;
  napi_get_value_bool(env, argv[1], &plus);
  size_t size = (size_t)sb_num(env, argv[2]);
  uint32_t count = 0;
  napi_get_array_length(env, argv[3], &count);
  size_t n_attr = 0, n_nodes = 0, n_offs = 0;
  const double *attrs = sb_float64s(env, argv[4], &n_attr);
  if (!attrs) return NULL;
  const double *nodes = sb_float64s(env, argv[5], &n_nodes);
  if (!nodes) return NULL;
  const double *offs = sb_float64s(env, argv[6], &n_offs);
  if (!offs) return NULL;
  if (n_attr < (size_t)count * ATTR_SLOTS || n_nodes < count || n_offs < count) {
    napi_throw_range_error(env, NULL, "splitbrain-fuse: replyDir arrays too short");
    return NULL;
  }
  double entry_t = sb_num(env, argv[7]), attr_t = sb_num(env, argv[8]);
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_number(env, 0);
  char *buf = malloc(size ? size : 1);
  if (!buf) {
    done(env, r, fuse_reply_err(r->req, ENOMEM));
    return sb_number(env, 0);
  }
  size_t used = 0;
  uint32_t added = 0;
  char name[NAME_MAX + 1];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    char *bytes;
    size_t len;
    napi_get_element(env, argv[3], i, &item);
    if (sb_bytes_of(env, item, &bytes, &len)) {
      free(buf);
      return NULL; /* unanswered: the JS exception reaches the adapter, which answers it */
    }
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
  int sent = fuse_reply_buf(r->req, buf, used);
  free(buf);
  done(env, r, sent);
  return sb_number(env, added);
}

/* replyPoll(handle, revents) */
napi_value sb_reply_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (sb_get_args(env, info, 2, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  if (!r) return sb_boolean(env, 0);
  return done(env, r, fuse_reply_poll(r->req, (unsigned)sb_num(env, argv[1])));
}

/*
 * interrupted(handle): whether the caller of an unanswered request was sent a signal (the
 * kernel's FUSE_INTERRUPT, which libfuse records on the request). Not an answer: a request that
 * waits long on our side (a flock that waits for the slave's holder) asks, and answers EINTR.
 */
napi_value sb_interrupted(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (sb_get_args(env, info, 1, argv)) return NULL;
  struct sb_req *r = sb_req_of(env, argv[0]);
  return sb_boolean(env, r != NULL && r->req != NULL && fuse_req_interrupted(r->req));
}
