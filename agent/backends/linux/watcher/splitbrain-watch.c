/*
 * splitbrain-watch: the agent's change watcher (agent/backends/linux/watch-helper.ts runs it).
 *
 *   splitbrain-watch [--mode auto|inotify] [EXPORT_ROOT]
 *
 * Why native: Node's fs.watch hides inotify's IN_Q_OVERFLOW (a lost event must become a
 * `lost` on the feed, never a silent gap) and cannot drain the queue on demand, which the
 * feed's barriers need; fanotify is not reachable from Node at all. This program only moves
 * bytes: the agent decides what to watch and what an event means (agent/watch/change-kinds.ts).
 *
 * Modes. inotify: one watch per directory the agent asks for. fanotify (auto, given the export
 * root, when fanotify_init and a FAN_MARK_FILESYSTEM mark on the root succeed: root with
 * CAP_SYS_ADMIN, Linux >= 5.9, a filesystem whose handles open_by_handle_at decodes): every
 * change on the root's filesystem arrives with its directory's file handle and the name; the
 * directory's path is found with open_by_handle_at + readlink(/proc/self/fd/N) (cached by
 * handle, the cache dropped whenever a directory moves or goes), and only changes under the
 * export root are reported, as slave paths. A directory the mark does not report under the path
 * the agent names (another filesystem mounted inside the root, a bind mount, a path through a
 * symlink) still gets an inotify watch.
 *
 * Framing, both ways: records of [u8 type][u32 little-endian payload length][payload]. Paths
 * and names are bytes, never text.
 *
 *   agent --stdin--> watcher
 *     'A' path           watch the directory at host path `path`: answered by 'a'. fanotify
 *                        mode: 0 when the mark reports it under that very path, else inotify
 *     'I' path           inotify_add_watch(path) in any mode (a path through a symlink)
 *     'R' i32 wd         inotify_rm_watch(wd)           no answer (IN_IGNORED follows)
 *     'S' u32 token      read every queued event, then answer 's' token: a barrier
 *     'Z'                new inotify and fanotify instances (after an overflow): answered by 'z'
 *   watcher --stdout--> agent
 *     'H' mode [NUL why] once, at start ("inotify" or "fanotify"; why fanotify is not used)
 *     'a' i32            the new watch descriptor (0: covered by the fanotify mark), or -errno
 *     'e' i32 wd, u32 mask, name bytes (empty: the watched directory itself); wd -1 with
 *                        IN_Q_OVERFLOW: either queue overflowed
 *     'f' u32 mask, u32 pid, u32 dir length, dir (slave path, "/" the root), name bytes
 *                        (empty: the directory itself): a fanotify event (FAN_* bits, which
 *                        are IN_*'s) and the process that caused it (0: not known), so the
 *                        agent can tell its own changes, made for a master, from the slave's
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
#include <fcntl.h>
#include <limits.h>
#include <dirent.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_MODIFY | \
                    IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | \
                    IN_EXCL_UNLINK)

#define MAX_COMMAND (64 * 1024)
#define OUT_LIMIT (256 * 1024)

/*
 * While changes keep coming, the queues are read every PACE_MS instead of at each event. Why:
 * the kernel wakes a reader sleeping on a queue from inside the system call that made the
 * change, so every open, write and close under the mark (the slave's own programs' too) paid for
 * waking this process (on a two-CPU virtual machine: the agent's open(O_TRUNC) took 33 us, 20 us
 * paced), and this process and the agent then woke once per event. Paced, nobody sleeps on
 * the queues: the changes cost their system calls only, and a burst reaches the agent in one
 * read per PACE_MS. A change after a quiet spell is read at once, as before; commands (a
 * barrier: 'S') are never paced. 5 ms, not 1: a loop of write 4 KiB + close through a mount
 * (0.65 ms a call) kept the watcher paced and woke it and the agent every millisecond; with 5 ms
 * the watcher's CPU per call went 23-36 us -> 6, the agent's 410-560 -> 380-410, context switches
 * per call 19 -> 15. A slave change amid a stream of changes reaches masters at most 5 ms later
 * (the coherence bound is 100 ms), and masters' own changes wait 25 ms anyway (change-publisher.ts).
 */
#define PACE_MS 5
/* Events read so far (inotify and fanotify, reported or not): pacing goes on while a read finds new ones. */
static unsigned long events_read;

static unsigned char out[OUT_LIMIT + MAX_COMMAND + 64];
static size_t out_len;
static int ino = -1;

/* fanotify mode: the group, the export root (canonical, no trailing slash but "/"), a descriptor
 * of it to decode handles against, and its device (only its filesystem is marked). */
#define FAN_WATCH_MASK (FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_ATTRIB | \
                        FAN_MODIFY | FAN_CLOSE_WRITE | FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR)
static int fan = -1;
static const char *root;
static size_t root_len;
static int root_fd = -1;
static dev_t root_dev;

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

/* Directory handle -> slave path, direct-mapped. Outside the root is remembered too (most of a
 * filesystem's changes are elsewhere). Dropped whole when any directory moves or goes, the only
 * way a directory's path changes. */
#define CACHE_SLOTS 4096
#define HANDLE_MAX 128
struct cached {
    unsigned int key_len; /* 0: empty slot */
    unsigned char key[8 + HANDLE_MAX];
    char *path;           /* NULL: outside the export root */
};
static struct cached cache[CACHE_SLOTS];

static void cache_clear(void) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(cache[i].path);
        cache[i].path = NULL;
        cache[i].key_len = 0;
    }
}

static size_t hash(const unsigned char *p, size_t n) {
    size_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h % CACHE_SLOTS;
}

/* The slave path ("/", "/a/b") of the directory at host path `host`, or NULL outside the root. */
static const char *slave_of(const char *host) {
    if (root_len == 1) return host;
    if (strncmp(host, root, root_len) != 0) return NULL;
    if (host[root_len] == 0) return "/";
    return host[root_len] == '/' ? host + root_len : NULL;
}

/* The longest host path named: the agent's longest slave path (LONG_PATH_MAX) below a root. */
#define LONG_PATH (32 * 1024 + PATH_MAX)
/* How many directories deep a climb from a long directory to a nameable one goes at most. */
#define CLIMB_MAX (LONG_PATH / 2)

/* `fd`'s path by its /proc link, in `host` (LONG_PATH bytes); its length, or -1 with errno. */
static ssize_t link_of(int fd, char *host) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, host, PATH_MAX - 1);
    if (n < 0) return -1;
    host[n] = 0;
    return n;
}

/* The name (NAME_MAX + 1 bytes) of directory `child` in the directory `parent` reads; 0 or -1. */
static int name_in(int parent, const struct stat *child, char *name) {
    int fd = dup(parent);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return -1; }
    int found = -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_ino != child->st_ino || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        if (fstatat(parent, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_ino != child->st_ino || st.st_dev != child->st_dev) continue;
        snprintf(name, NAME_MAX + 1, "%s", e->d_name);
        found = 0;
        break;
    }
    closedir(d);
    return found;
}

/*
 * The path of directory `fd` when it passes PATH_MAX, which its /proc link cannot give
 * (ENAMETOOLONG): climb by ".." to the nearest ancestor it can, naming each directory on the way
 * by its inode number in its parent. 0, or -1 (gone, or deeper than LONG_PATH).
 */
static int long_host_of(int fd, char *host) {
    static char names[CLIMB_MAX][NAME_MAX + 1];
    int depth = 0, cur = dup(fd), found = -1;
    while (cur >= 0 && depth < CLIMB_MAX) {
        struct stat st;
        int parent = fstat(cur, &st) == 0 ? openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (parent < 0 || name_in(parent, &st, names[depth]) != 0) {
            if (parent >= 0) close(parent);
            break;
        }
        depth++;
        close(cur);
        cur = parent;
        ssize_t n = link_of(cur, host);
        if (n < 0 && errno == ENAMETOOLONG) continue;
        if (n <= 0) break;
        size_t len = (size_t)n;
        for (int i = depth - 1; i >= 0; i--) {
            size_t add = strlen(names[i]);
            if (len + 1 + add >= LONG_PATH) break;
            if (!(len == 1 && host[0] == '/')) host[len++] = '/';
            memcpy(host + len, names[i], add);
            len += add;
            host[len] = 0;
            if (i == 0) found = 0;
        }
        break;
    }
    if (cur >= 0) close(cur);
    return found;
}

/* The directory's host path by its handle, in `host` (LONG_PATH bytes); 0, or -1 when it cannot be named (gone). */
static int host_of(struct file_handle *fh, char *host) {
    int fd = open_by_handle_at(root_fd, fh, O_PATH | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = link_of(fd, host);
    int named = n > 0 || (n < 0 && errno == ENAMETOOLONG && long_host_of(fd, host) == 0);
    struct stat st;
    int gone = !named || fstat(fd, &st) != 0 || st.st_nlink == 0; /* unlinked: "... (deleted)" */
    close(fd);
    return gone ? -1 : 0;
}

/* The slave path of the directory `fh` names; NULL outside the root or gone. */
static const char *resolve(struct file_handle *fh) {
    static char host[LONG_PATH];
    unsigned char key[8 + HANDLE_MAX];
    if (fh->handle_bytes > HANDLE_MAX) return NULL;
    size_t key_len = 8 + fh->handle_bytes;
    memcpy(key, &fh->handle_type, 4);
    memcpy(key + 4, &fh->handle_bytes, 4);
    memcpy(key + 8, fh->f_handle, fh->handle_bytes);
    struct cached *slot = &cache[hash(key, key_len)];
    if (slot->key_len == key_len && memcmp(slot->key, key, key_len) == 0) return slot->path;
    if (host_of(fh, host) != 0) return NULL;
    const char *slave = slave_of(host);
    free(slot->path);
    slot->path = slave ? strdup(slave) : NULL;
    if (slave && !slot->path) die("strdup");
    slot->key_len = (unsigned int)key_len;
    memcpy(slot->key, key, key_len);
    return slot->path;
}

/* Marks the export root's filesystem; the reason it cannot be, else NULL. */
static const char *open_fanotify(void) {
    static char why[256];
    if (fan >= 0) close(fan);
    cache_clear();
    fan = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_CLOEXEC | O_LARGEFILE);
    if (fan < 0) {
        snprintf(why, sizeof why, "fanotify_init: %s", strerror(errno));
        return why;
    }
    if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_WATCH_MASK, AT_FDCWD, root) != 0) {
        snprintf(why, sizeof why, "fanotify_mark: %s", strerror(errno));
        close(fan);
        fan = -1;
        return why;
    }
    return NULL;
}

/* Whether the handles of the root's filesystem lead back to their paths (decodable, /proc). */
static const char *check_handles(void) {
    static char why[256];
    struct { struct file_handle fh; unsigned char room[HANDLE_MAX]; } h;
    static char host[LONG_PATH];
    int mount_id;
    struct stat st;
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* handles decode against it: not O_PATH */
    if (root_fd < 0 || fstat(root_fd, &st) != 0) {
        snprintf(why, sizeof why, "open %s: %s", root, strerror(errno));
        return why;
    }
    root_dev = st.st_dev;
    h.fh.handle_bytes = HANDLE_MAX;
    if (name_to_handle_at(root_fd, "", &h.fh, &mount_id, AT_EMPTY_PATH) != 0) {
        snprintf(why, sizeof why, "name_to_handle_at: %s", strerror(errno));
        return why;
    }
    if (host_of(&h.fh, host) != 0) {
        snprintf(why, sizeof why, "open_by_handle_at/readlink: %s", strerror(errno));
        return why;
    }
    if (strcmp(host, root) != 0) {
        snprintf(why, sizeof why, "the root's handle leads to %.200s", host);
        return why;
    }
    return NULL;
}

/*
 * An O_PATH descriptor of directory `path` (absolute), following symlinks as stat does, however
 * long the path: one past PATH_MAX is opened piece by piece, each relative to the last. -1 with errno.
 */
static int open_dir(const char *path) {
    size_t len = strlen(path), at = 0;
    if (len < PATH_MAX) return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    static char piece[PATH_MAX];
    int dir = AT_FDCWD;
    while (at < len) {
        size_t take = len - at;
        if (take >= PATH_MAX) {
            size_t cut = at + PATH_MAX - 1;
            while (cut > at && path[cut] != '/') cut--;
            if (cut == at) {
                if (dir != AT_FDCWD) close(dir);
                errno = ENAMETOOLONG;
                return -1;
            }
            take = cut - at;
        }
        const char *from = path + at;
        size_t n = take;
        /* After the first piece, relative to the directory so far: an absolute one would ignore it. */
        if (dir != AT_FDCWD) while (n > 0 && *from == '/') { from++; n--; }
        memcpy(piece, from, n);
        piece[n] = 0;
        int next = openat(dir, n > 0 ? piece : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        int saved = errno;
        if (dir != AT_FDCWD) close(dir);
        if (next < 0) {
            errno = saved;
            return -1;
        }
        dir = next;
        at += take;
    }
    return dir;
}

/* 'A' in fanotify mode: 0 when the mark reports `path`'s changes under `path` itself. */
static int covered(const char *path) {
    struct { struct file_handle fh; unsigned char room[HANDLE_MAX]; } h;
    static char host[LONG_PATH];
    int mount_id;
    struct stat st;
    int fd = open_dir(path);
    if (fd < 0) return -errno;
    int answer = 1;
    h.fh.handle_bytes = HANDLE_MAX;
    if (fstat(fd, &st) == 0 && st.st_dev == root_dev && name_to_handle_at(fd, "", &h.fh, &mount_id, AT_EMPTY_PATH) == 0
        && host_of(&h.fh, host) == 0 && strcmp(host, path) == 0) answer = 0;
    close(fd);
    return answer;
}

/* inotify_add_watch of directory `path`, however long (through its descriptor's /proc link). */
static int add_watch(const char *path) {
    if (strlen(path) < PATH_MAX) return inotify_add_watch(ino, path, WATCH_MASK);
    int fd = open_dir(path);
    if (fd < 0) return -1;
    char through[64];
    snprintf(through, sizeof through, "/proc/self/fd/%d/.", fd); /* "." last: the link is followed */
    int wd = inotify_add_watch(ino, through, WATCH_MASK);
    int saved = errno;
    close(fd);
    errno = saved;
    return wd;
}

static void drain_fanotify(void) {
    static char buf[64 * 1024] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
    static const unsigned char overflow[8] = { 0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x00, 0x00 }; /* wd -1, IN_Q_OVERFLOW */
    for (;;) {
        ssize_t n = read(fan, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            die("read fanotify");
        }
        if (n == 0) return;
        struct fanotify_event_metadata *md = (struct fanotify_event_metadata *)buf;
        for (; FAN_EVENT_OK(md, n); md = FAN_EVENT_NEXT(md, n)) {
            events_read++;
            if (md->vers != FANOTIFY_METADATA_VERSION) {
                fprintf(stderr, "splitbrain-watch: fanotify metadata version %u\n", md->vers);
                exit(2);
            }
            if (md->fd >= 0) close(md->fd);
            if (md->mask & FAN_Q_OVERFLOW) {
                record('e', overflow, sizeof overflow, NULL, 0);
                continue;
            }
            const char *end = (const char *)md + md->event_len;
            for (const char *p = (const char *)md + md->metadata_len; p + sizeof(struct fanotify_event_info_header) <= end;) {
                const struct fanotify_event_info_header *hdr = (const struct fanotify_event_info_header *)p;
                if (hdr->len == 0 || p + hdr->len > end) break;
                if (hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME || hdr->info_type == FAN_EVENT_INFO_TYPE_DFID) {
                    struct fanotify_event_info_fid *fid = (struct fanotify_event_info_fid *)p;
                    struct file_handle *fh = (struct file_handle *)fid->handle;
                    const char *name = "";
                    if (hdr->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
                        name = (const char *)fh->f_handle + fh->handle_bytes;
                        if (strcmp(name, ".") == 0) name = ""; /* an event on the directory itself */
                    }
                    const char *dir = resolve(fh);
                    if (dir) {
                        static unsigned char head[12 + LONG_PATH];
                        size_t dir_len = strlen(dir);
                        put_u32(head, md->mask);
                        put_u32(head + 4, md->pid > 0 ? (uint32_t)md->pid : 0);
                        put_u32(head + 8, (uint32_t)dir_len);
                        memcpy(head + 12, dir, dir_len);
                        record('f', head, 12 + dir_len, name, strlen(name));
                    }
                    break;
                }
                p += hdr->len;
            }
            /* A directory moved or went: paths cached of it and below are wrong from here on. */
            if ((md->mask & FAN_ONDIR) && (md->mask & (FAN_MOVED_FROM | FAN_MOVED_TO | FAN_DELETE | FAN_MOVE_SELF | FAN_DELETE_SELF))) cache_clear();
        }
    }
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
            events_read++;
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
}

static void command(unsigned char type, unsigned char *payload, uint32_t len) {
    unsigned char answer[4];
    switch (type) {
    case 'A':
    case 'I': {
        static char path[MAX_COMMAND + 1];
        memcpy(path, payload, len);
        path[len] = 0;
        int wd = type == 'A' && fan >= 0 ? covered(path) : 1;
        if (wd == 1) {
            wd = add_watch(path);
            if (wd < 0) wd = -errno;
        }
        put_u32(answer, (uint32_t)wd);
        record('a', answer, 4, NULL, 0);
        break;
    }
    case 'R':
        if (len == 4) inotify_rm_watch(ino, (int)get_u32(payload));
        break;
    case 'S':
        drain();
        if (fan >= 0) drain_fanotify();
        record('s', payload, len == 4 ? 4 : 0, NULL, 0);
        break;
    case 'Z':
        open_inotify();
        if (fan >= 0) {
            const char *why = open_fanotify();
            if (why) {
                fprintf(stderr, "splitbrain-watch: fanotify again: %s\n", why);
                exit(2);
            }
        }
        record('z', NULL, 0, NULL, 0);
        break;
    default:
        fprintf(stderr, "splitbrain-watch: unknown command %u\n", type);
        exit(2);
    }
}

int main(int argc, char **argv) {
    static unsigned char in[2 * (MAX_COMMAND + 5)];
    size_t in_len = 0;
    int fanotify_wanted = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) fanotify_wanted = strcmp(argv[++i], "inotify") != 0;
        else root = argv[i];
    }
    open_inotify();
    const char *why = "no export root given";
    if (root && !fanotify_wanted) why = "--watch-mode inotify";
    else if (root) {
        root_len = strlen(root);
        why = check_handles();
        if (!why) why = open_fanotify();
    }
    if (why) record('H', "inotify", 8, why, strlen(why));
    else record('H', "fanotify", 8, NULL, 0);
    flush_out();
    int paced = 0;
    for (;;) {
        struct pollfd fds[3] = { { .fd = 0, .events = POLLIN }, { .fd = ino, .events = POLLIN }, { .fd = fan, .events = POLLIN } };
        /* Paced: only stdin is watched, for PACE_MS; then both queues are read. */
        if (poll(fds, paced ? 1 : fan >= 0 ? 3 : 2, paced ? PACE_MS : -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        unsigned long before = events_read;
        if (paced || (fds[1].revents & POLLIN)) drain();
        if (fan >= 0 && (paced || (fds[2].revents & POLLIN))) drain_fanotify();
        paced = events_read != before;
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
