/*
 * Request capture: libfuse's low-level callbacks, each copying its request's arguments into an
 * sb_req by name and handing it to JavaScript (crossing.c). Called on the JS thread, from
 * session.c's processing of /dev/fuse. A request is answered by JavaScript (replies.c), or here
 * with ENOMEM when it cannot be captured.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sb-fuse.h"

static int copy_name(char **to, size_t *len, const char *name) {
  return sb_copy_into(to, len, name, strlen(name));
}

/* Takes the poll handle kept for `fh` out of the table (NULL if none): the caller owns it. */
struct fuse_pollhandle *sb_take_poll(struct sb_mount *m, uint64_t fh) {
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

static struct sb_req *request(fuse_req_t req, enum sb_op op, uint64_t ino) {
  return sb_new_req(fuse_req_userdata(req), req, op, ino);
}

/* Hands the request to JavaScript; answers ENOMEM itself when it could not be captured. */
static void send_req(struct sb_req *r, fuse_req_t req) {
  if (!r) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  sb_deliver(r->mount, r);
}

/* Drops a request whose copies failed: NULL, for send_req to answer ENOMEM. */
static struct sb_req *failed(struct sb_req *r) {
  sb_free_req(r);
  return NULL;
}

static void with_name(fuse_req_t req, enum sb_op op, fuse_ino_t parent, const char *name) {
  struct sb_req *r = request(req, op, parent);
  if (r && copy_name(&r->name, &r->name_len, name)) r = failed(r);
  send_req(r, req);
}

static void with_file(fuse_req_t req, enum sb_op op, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, op, ino);
  if (r) {
    r->fh = fi->fh;
    r->has_fh = 1;
    r->flags = fi->flags;
  }
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
  /*
   * Only where the page cache has no one else to keep it true (MountConfig.autoInvalData). libfuse
   * asks for it by default: the kernel then drops a file's pages whenever an answer brings an
   * mtime other than the one it holds, and it holds none of our writes' (it leaves a write's mtime
   * to the filesystem), so every file written through the mount lost its pages at the next stat.
   */
  if (m->auto_inval && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  else conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  m->expire_only = (conn->capable & FUSE_CAP_EXPIRE_ONLY) != 0;
  if (m->posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL)) conn->want |= FUSE_CAP_POSIX_ACL;
  if (m->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  /*
   * flock(2) goes to the filesystem when it asks (the slave's lock then binds the slave's own
   * programs and other masters too); POSIX (fcntl) locks stay local to the master's kernel, as on
   * any FUSE mount without lock support.
   */
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  if (m->flock && (conn->capable & FUSE_CAP_FLOCK_LOCKS)) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void ll_destroy(void *userdata) { (void)userdata; }

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_LOOKUP, parent, name); }

static void queue_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  struct sb_req *r = sb_new_req(fuse_req_userdata(req), NULL, OP_FORGET, ino);
  if (!r) return; /* the node stays known: a leak, never a wrong answer */
  r->nlookup = (double)nlookup;
  sb_deliver(r->mount, r);
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
  struct sb_req *r = request(req, OP_GETATTR, ino);
  if (r && fi) { r->fh = fi->fh; r->has_fh = 1; }
  send_req(r, req);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_SETATTR, ino);
  if (r) {
    if (fi) { r->fh = fi->fh; r->has_fh = 1; }
    double *s = r->setattr;
    s[SETATTR_MODE] = attr->st_mode;
    s[SETATTR_UID] = attr->st_uid;
    s[SETATTR_GID] = attr->st_gid;
    s[SETATTR_SIZE] = (double)attr->st_size;
    s[SETATTR_ATIME_S] = (double)attr->st_atim.tv_sec;
    s[SETATTR_ATIME_NS] = (double)attr->st_atim.tv_nsec;
    s[SETATTR_MTIME_S] = (double)attr->st_mtim.tv_sec;
    s[SETATTR_MTIME_NS] = (double)attr->st_mtim.tv_nsec;
    s[SETATTR_TO_SET] = to_set;
  }
  send_req(r, req);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { send_req(request(req, OP_READLINK, ino), req); }

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  struct sb_req *r = request(req, OP_MKNOD, parent);
  if (r) { r->mode = mode; r->rdev = (double)rdev; }
  if (r && copy_name(&r->name, &r->name_len, name)) r = failed(r);
  send_req(r, req);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  struct sb_req *r = request(req, OP_MKDIR, parent);
  if (r) r->mode = mode;
  if (r && copy_name(&r->name, &r->name_len, name)) r = failed(r);
  send_req(r, req);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_UNLINK, parent, name); }
static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) { with_name(req, OP_RMDIR, parent, name); }

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  struct sb_req *r = request(req, OP_SYMLINK, parent);
  if (r && (copy_name(&r->name, &r->name_len, name) || copy_name(&r->data, &r->data_len, link))) r = failed(r);
  send_req(r, req);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  struct sb_req *r = request(req, OP_RENAME, parent);
  if (r) { r->ino2 = newparent; r->flags = flags; }
  if (r && (copy_name(&r->name, &r->name_len, name) || copy_name(&r->name2, &r->name2_len, newname))) r = failed(r);
  send_req(r, req);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  struct sb_req *r = request(req, OP_LINK, ino);
  if (r) r->ino2 = newparent;
  if (r && copy_name(&r->name, &r->name_len, newname)) r = failed(r);
  send_req(r, req);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_OPEN, ino);
  if (r) r->flags = fi->flags;
  send_req(r, req);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_READ, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->size = (double)size; r->offset = (double)off; }
  send_req(r, req);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_WRITE, ino);
  if (r) {
    r->fh = fi->fh;
    r->has_fh = 1;
    r->offset = (double)off;
    r->slot = take_slot(r->mount, size);
    if (r->slot) {
      memcpy(r->slot->mem, buf, size);
      r->data_len = size;
    } else if (sb_copy_into(&r->data, &r->data_len, buf, size)) {
      r = failed(r);
    }
  }
  send_req(r, req);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { with_file(req, OP_FLUSH, ino, fi); }

/* fallocate(2): `mode` in `flags`, the range in `offset` and `size`. */
static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_FALLOCATE, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->flags = mode; r->offset = (double)offset; r->size = (double)length; }
  send_req(r, req);
}

/* lseek(2) with SEEK_DATA or SEEK_HOLE (the kernel answers the others): `whence` in `flags`. */
static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_LSEEK, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->offset = (double)off; r->flags = whence; }
  send_req(r, req);
}

/* copy_file_range(2) between two open files of the mount: from (ino, fh, offset) to (ino2, fh2, offset2). */
static void ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in, fuse_ino_t ino_out,
                               off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags) {
  struct sb_req *r = request(req, OP_COPY_FILE_RANGE, ino_in);
  if (r) {
    r->fh = fi_in->fh;
    r->has_fh = 1;
    r->offset = (double)off_in;
    r->ino2 = ino_out;
    r->fh2 = (double)fi_out->fh;
    r->offset2 = (double)off_out;
    r->size = (double)len;
    r->flags = flags;
  }
  send_req(r, req);
}

/*
 * flock(2) of an open file: `op` (LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB unless the caller
 * waits) in `flags`. The kernel asks only when the filesystem took FUSE_CAP_FLOCK_LOCKS (ll_init).
 */
static void ll_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op) {
  struct sb_req *r = request(req, OP_FLOCK, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->flags = op; }
  send_req(r, req);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  /* No poll(2) waits on a released file: its handle goes with it. */
  struct fuse_pollhandle *ph = sb_take_poll(fuse_req_userdata(req), fi->fh);
  if (ph) fuse_pollhandle_destroy(ph);
  with_file(req, OP_RELEASE, ino, fi);
}

/*
 * poll(2) on an open file: JavaScript answers what it is ready for (replyPoll), and, when the
 * kernel asked to be told (ph), calls notifyPoll(fh) once it becomes ready. The handle stays
 * here, never in JavaScript: the latest one per file, the one before destroyed.
 */
static void ll_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph) {
  struct sb_mount *m = fuse_req_userdata(req);
  if (ph) {
    struct fuse_pollhandle *old = sb_take_poll(m, fi->fh);
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
  struct sb_req *r = request(req, OP_POLL, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->wants_notify = ph != NULL; }
  send_req(r, req);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_OPENDIR, ino);
  if (r) r->flags = fi->flags;
  send_req(r, req);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { with_file(req, OP_RELEASEDIR, ino, fi); }

static void fsync_as(enum sb_op op, fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, op, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->datasync = datasync != 0; }
  send_req(r, req);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  fsync_as(OP_FSYNC, req, ino, datasync, fi);
}

/* A directory's fsync: where changes answered before the slave made them are reported. */
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  fsync_as(OP_FSYNCDIR, req, ino, datasync, fi);
}

static void readdir_as(enum sb_op op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, op, ino);
  if (r) { r->fh = fi->fh; r->has_fh = 1; r->size = (double)size; r->offset = (double)off; }
  send_req(r, req);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_as(OP_READDIR, req, ino, size, off, fi);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_as(OP_READDIRPLUS, req, ino, size, off, fi);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { send_req(request(req, OP_STATFS, ino), req); }

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  struct sb_req *r = request(req, OP_SETXATTR, ino);
  if (r) r->flags = flags;
  if (r && (copy_name(&r->name, &r->name_len, name) || sb_copy_into(&r->data, &r->data_len, value, size))) r = failed(r);
  send_req(r, req);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  struct sb_req *r = request(req, OP_GETXATTR, ino);
  if (r) r->size = (double)size;
  if (r && copy_name(&r->name, &r->name_len, name)) r = failed(r);
  send_req(r, req);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  struct sb_req *r = request(req, OP_LISTXATTR, ino);
  if (r) r->size = (double)size;
  send_req(r, req);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) { with_name(req, OP_REMOVEXATTR, ino, name); }

static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  struct sb_req *r = request(req, OP_ACCESS, ino);
  if (r) r->mask = mask;
  send_req(r, req);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  struct sb_req *r = request(req, OP_CREATE, parent);
  if (r) { r->mode = mode; r->flags = fi->flags; }
  if (r && copy_name(&r->name, &r->name_len, name)) r = failed(r);
  send_req(r, req);
}

const struct fuse_lowlevel_ops sb_ll_ops = {
  .init = ll_init, .destroy = ll_destroy, .lookup = ll_lookup, .forget = ll_forget,
  .forget_multi = ll_forget_multi, .getattr = ll_getattr, .setattr = ll_setattr,
  .readlink = ll_readlink, .mknod = ll_mknod, .mkdir = ll_mkdir, .unlink = ll_unlink,
  .rmdir = ll_rmdir, .symlink = ll_symlink, .rename = ll_rename, .link = ll_link,
  .open = ll_open, .read = ll_read, .write = ll_write, .flush = ll_flush, .release = ll_release,
  .fsync = ll_fsync, .opendir = ll_opendir, .readdir = ll_readdir, .releasedir = ll_releasedir,
  .statfs = ll_statfs, .setxattr = ll_setxattr, .getxattr = ll_getxattr,
  .listxattr = ll_listxattr, .removexattr = ll_removexattr, .access = ll_access,
  .create = ll_create, .readdirplus = ll_readdirplus, .poll = ll_poll, .fsyncdir = ll_fsyncdir,
  .fallocate = ll_fallocate, .lseek = ll_lseek, .copy_file_range = ll_copy_file_range, .flock = ll_flock,
};
