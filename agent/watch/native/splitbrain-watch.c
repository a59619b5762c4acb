/*
 * splitbrain-watch: the agent's change watcher (agent/watch/watch-helper.ts runs it).
 *
 * Why native: Node's fs.watch hides inotify's IN_Q_OVERFLOW (a lost event must become a
 * `lost` on the feed, never a silent gap) and cannot drain the queue on demand, which the
 * feed's barriers need. This program only moves bytes: the agent decides what to watch and
 * what an event means (agent/watch/change-kinds.ts).
 *
 * Framing, both ways: records of [u8 type][u32 little-endian payload length][payload]. Paths
 * and names are bytes, never text.
 *
 *   agent --stdin--> watcher
 *     'A' path           inotify_add_watch(path)        answered by 'a'
 *     'R' i32 wd         inotify_rm_watch(wd)           no answer (IN_IGNORED follows)
 *     'S' u32 token      read every queued event, then answer 's' token: a barrier
 *     'Z'                a new inotify instance (after an overflow): answered by 'z'
 *   watcher --stdout--> agent
 *     'H' mode           once, at start ("inotify")
 *     'a' i32            the new watch descriptor, or -errno
 *     'e' i32 wd, u32 mask, name bytes (empty: the watched directory itself)
 *     's' u32 token, 'z'
 *
 * Answers and events leave in the order they happened, on one stream: an event queued before
 * a sync command was read always precedes that command's answer. The watcher exits when its
 * stdin closes (the agent is gone) or on any I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_MODIFY | \
                    IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | \
                    IN_EXCL_UNLINK)

#define MAX_COMMAND (64 * 1024)
#define OUT_LIMIT (256 * 1024)

static unsigned char out[OUT_LIMIT + MAX_COMMAND + 64];
static size_t out_len;
static int ino = -1;

static void die(const char *what) {
    fprintf(stderr, "splitbrain-watch: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void flush_out(void) {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out + done, out_len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        done += (size_t)n;
    }
    out_len = 0;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = (v >> 24) & 0xff;
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Appends one record; the buffer is written out when full and at the end of each turn. */
static void record(char type, const void *a, size_t alen, const void *b, size_t blen) {
    if (out_len + 5 + alen + blen > OUT_LIMIT) flush_out();
    out[out_len] = (unsigned char)type;
    put_u32(out + out_len + 1, (uint32_t)(alen + blen));
    memcpy(out + out_len + 5, a, alen);
    if (blen) memcpy(out + out_len + 5 + alen, b, blen);
    out_len += 5 + alen + blen;
}

static void open_inotify(void) {
    if (ino >= 0) close(ino);
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino < 0) die("inotify_init1");
}

/* Reads what the kernel has queued, without waiting; returns once the queue is empty. */
static void drain(void) {
    static char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(ino, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            die("read inotify");
        }
        if (n == 0) return;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            unsigned char head[8];
            put_u32(head, (uint32_t)ev->wd);
            put_u32(head + 4, ev->mask);
            size_t name_len = ev->len ? strnlen(ev->name, ev->len) : 0;
            record('e', head, sizeof head, ev->name, name_len);
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
}

static void command(unsigned char type, unsigned char *payload, uint32_t len) {
    unsigned char answer[4];
    switch (type) {
    case 'A': {
        char path[MAX_COMMAND + 1];
        memcpy(path, payload, len);
        path[len] = 0;
        int wd = inotify_add_watch(ino, path, WATCH_MASK);
        put_u32(answer, (uint32_t)(wd < 0 ? -errno : wd));
        record('a', answer, 4, NULL, 0);
        break;
    }
    case 'R':
        if (len == 4) inotify_rm_watch(ino, (int)get_u32(payload));
        break;
    case 'S':
        drain();
        record('s', payload, len == 4 ? 4 : 0, NULL, 0);
        break;
    case 'Z':
        open_inotify();
        record('z', NULL, 0, NULL, 0);
        break;
    default:
        fprintf(stderr, "splitbrain-watch: unknown command %u\n", type);
        exit(2);
    }
}

int main(void) {
    static unsigned char in[2 * (MAX_COMMAND + 5)];
    size_t in_len = 0;
    open_inotify();
    record('H', "inotify", 7, NULL, 0);
    flush_out();
    for (;;) {
        struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[1].revents & POLLIN) drain();
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(0, in + in_len, sizeof in - in_len);
            if (n < 0 && errno != EINTR) die("read stdin");
            if (n == 0) {
                flush_out();
                return 0;
            }
            if (n > 0) in_len += (size_t)n;
            size_t at = 0;
            while (in_len - at >= 5) {
                uint32_t len = get_u32(in + at + 1);
                if (len > MAX_COMMAND) {
                    fprintf(stderr, "splitbrain-watch: command of %u bytes\n", len);
                    return 2;
                }
                if (in_len - at < 5 + len) break;
                command(in[at], in + at + 5, len);
                at += 5 + len;
            }
            memmove(in, in + at, in_len - at);
            in_len -= at;
        }
        flush_out();
    }
}
