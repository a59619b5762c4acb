/*
 * The session loop: /dev/fuse, non-blocking, watched by Node's own event loop (a uv_poll
 * handle). Each wakeup reads what the kernel has queued and processes it at once on the JS
 * thread (capture.c's callbacks call JavaScript directly): no thread of its own, no hop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <string.h>
#include <unistd.h>
#include "sb-fuse.h"

/* Requests read per wakeup at most, so that replies from the bus are not held up behind a burst. */
#define BURST 64

static void on_closed(uv_handle_t *handle) {
  struct sb_mount *m = handle->data;
  m->poll_closing = 0;
  if (m->free_when_closed) sb_free_mount(m);
}

/* Stops watching /dev/fuse (before its descriptor goes); the handle closes on a later loop turn. */
void sb_session_stop(struct sb_mount *m) {
  if (!m->polling) return;
  m->polling = 0;
  m->poll_closing = 1;
  uv_poll_stop(&m->poll);
  uv_close((uv_handle_t *)&m->poll, on_closed);
}

/*
 * The session is over (unmounted from outside, or by us): stop watching /dev/fuse and tell
 * JavaScript, on a later turn of the loop (we may be inside a JavaScript call: unmount()).
 */
void sb_end_session(struct sb_mount *m) {
  if (!m->polling) return;
  sb_session_stop(m);
  struct sb_req *r = sb_new_req(m, NULL, OP_DESTROY, 0);
  if (r && napi_call_threadsafe_function(m->dispatch, r, napi_tsfn_nonblocking) != napi_ok) sb_free_req(r);
}

/*
 * The session's INIT, answered by libfuse with FUSE_HANDLE_KILLPRIV and FUSE_HANDLE_KILLPRIV_V2
 * added to its reply.
 *
 * Why: without it the kernel asks for a GETATTR before every chown of a file, and before a write
 * or truncate of a set-id file, to recompute the set-id bits itself (fuse_setattr); for a file the
 * mount answered at once that GETATTR waits a round trip for the slave (issue 24: a third of an
 * untar's time). With it the filesystem drops the bits itself (remote-fs.ts does, by the rules of
 * Linux). V2 asks the same of the filesystem (the kernel then also says in each write, truncate
 * and open whether the caller lacks CAP_FSETID; remote-fs.ts judges that itself) and lets the
 * kernel mark the superblock SB_NOSEC: once an inode's first write found no security.capability,
 * its next writes stop asking for it (before, every write asked: a getxattr request to us each;
 * an untar of npm made 3,892 instead of 5,055, the rest being first writes and chowns). libfuse
 * 3.14 knows FUSE_CAP_HANDLE_KILLPRIV and wants it by default but never puts the flag in its
 * reply, and has no hook for its writes (custom I/O came with 3.15), so the reply is
 * taken from a pipe put at the session's descriptor number while libfuse writes it, and written to
 * /dev/fuse here. Only INIT, the first request, goes this way: the kernel sends nothing else until
 * it is answered. Returns 0, or -1 (then the caller processes the request as libfuse would).
 */
static int process_init_with_killpriv(struct sb_mount *m) {
  int fd = fuse_session_fd(m->se);
  int saved = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (saved < 0) return -1;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) { close(saved); return -1; }
  if (dup2(p[1], fd) < 0) { close(saved); close(p[0]); close(p[1]); return -1; }
  fuse_session_process_buf(m->se, &m->buf);
  dup3(saved, fd, O_CLOEXEC);
  close(saved);
  close(p[1]);
  char reply[512];
  ssize_t n = read(p[0], reply, sizeof reply);
  close(p[0]);
  if (n < (ssize_t)sizeof(struct fuse_out_header)) {
    fuse_session_exit(m->se);
    return 0;
  }
  struct fuse_out_header out;
  memcpy(&out, reply, sizeof out);
  /* The flags word of the fuse_init_out after the header, if the reply has one (not an error). */
  size_t at = sizeof out + offsetof(struct fuse_init_out, flags);
  uint32_t flags;
  if (out.error == 0 && (size_t)n >= at + sizeof flags) {
    memcpy(&flags, reply + at, sizeof flags);
    flags |= FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2;
    memcpy(reply + at, &flags, sizeof flags);
  }
  if (write(fd, reply, (size_t)n) != n) fuse_session_exit(m->se);
  return 0;
}

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
    sb_end_session(m);
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
    if (m->kill_priv && !m->init_seen && !(m->buf.flags & FUSE_BUF_IS_FD)) {
      const struct fuse_in_header *in = m->buf.mem;
      m->init_seen = 1;
      if (in->opcode == FUSE_INIT && process_init_with_killpriv(m) == 0) continue;
    }
    fuse_session_process_buf(m->se, &m->buf);
  }
  if (fuse_session_exited(m->se)) sb_end_session(m);
  if (scoped) napi_close_callback_scope(env, callback_scope);
  napi_close_handle_scope(env, scope);
}

/* Starts watching the mounted session's descriptor; 0, or -1 when libuv cannot. */
int sb_session_start(struct sb_mount *m, uv_loop_t *loop) {
  int fd = fuse_session_fd(m->se);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (uv_poll_init(loop, &m->poll, fd) != 0) return -1;
  m->poll.data = m;
  m->polling = 1;
  uv_poll_start(&m->poll, UV_READABLE, on_readable);
  return 0;
}
