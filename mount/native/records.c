/*
 * The binding's records and their memory: a kernel request on its way to JavaScript (sb_req,
 * made by capture.c, freed once answered or, for forget and destroy, once delivered) and a
 * mount (sb_mount, made by module.c, freed once disposed and unreferenced, and once the loop
 * has closed its poll handle).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "sb-fuse.h"

struct sb_req *sb_new_req(struct sb_mount *m, fuse_req_t req, enum sb_op op, uint64_t ino) {
  struct sb_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->mount = m;
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

int sb_copy_into(char **to, size_t *len, const char *from, size_t n) {
  *to = malloc(n ? n : 1);
  if (!*to) return -1;
  memcpy(*to, from, n);
  *len = n;
  return 0;
}

void sb_free_req(struct sb_req *r) {
  free(r->name);
  free(r->name2);
  free(r->data);
  if (r->slot) r->slot->busy = 0;
  free(r);
}

/*
 * Frees what a mount holds outside the session (its session, if any, is gone already): now, or
 * once the loop has closed its poll handle, which lives in the struct.
 */
void sb_free_mount(struct sb_mount *m) {
  if (m->poll_closing) {
    m->free_when_closed = 1;
    return;
  }
  while (m->head) {
    struct sb_note *n = m->head;
    m->head = n->next;
    if (n->kind == NOTE_POLL) fuse_pollhandle_destroy(n->ph);
    free(n->name);
    free(n);
  }
  while (m->polls) {
    struct sb_poll *p = m->polls;
    m->polls = p->next;
    fuse_pollhandle_destroy(p->ph);
    free(p);
  }
  free(m->buf.mem);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->wake);
  free(m);
}
