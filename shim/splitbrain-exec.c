/*
 * splitbrain-exec: run one command on the slave through the splitbrain bridge.
 *
 * Installed as a symlink named after the bridged command (uname -> splitbrain-exec)
 * or called as `splitbrain-exec CMD ARGS...`. It connects to the bridge's Unix socket,
 * sends START (argv, cwd, environ, pty wish, who is asking), then pumps stdin/stdout/stderr and
 * signals until the bridge reports how the remote process ended. README.md holds the
 * normative frame protocol.
 *
 * It must run in any Linux image (glibc, musl, no libc at all), so it is built
 * statically and uses nothing beyond libc/POSIX.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define SHIM_NAME "splitbrain-exec"
#define DEFAULT_SOCKET "/splitbrain/bridge.sock"
#define PROTOCOL_VERSION 2
#define HEADER_LEN 5
#define MAX_PAYLOAD (1024u * 1024u)
#define STDIN_CHUNK (64u * 1024u)
#define START_FIXED_LEN 26 /* version, flags, rows, cols, argc, envc, uid, gid, ngroups */

#define RUNNING (-1) /* step functions return this, or the shim's final exit status */
#define STATUS_USAGE 2
#define STATUS_TOO_LONG 126
#define STATUS_UNREACHABLE 127
#define STATUS_STDOUT_EPIPE 141
#define STATUS_BRIDGE_FAILED 255

enum frame_type {
    FT_START = 0x01, FT_STDIN = 0x02, FT_STDIN_EOF = 0x03, FT_SIGNAL = 0x04, FT_WINSIZE = 0x05,
    FT_STDOUT = 0x81, FT_STDERR = 0x82, FT_EXIT = 0x83, FT_ERROR = 0x84,
};

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

/* Write end of the self-pipe: a handler cannot take arguments, so this is the one global. */
static int sig_pipe_wr = -1;

struct buf {
    unsigned char *data;
    size_t off, len, cap; /* bytes [off, len) are pending */
};

struct session {
    int sock, sig_rd;
    int pty;            /* the bridge was asked for a pty (stdin is a terminal) */
    int stdin_open;     /* still polling fd 0 */
    int bridge_reading; /* false once a send failed: the bridge took no more frames */
    int stderr_ok;      /* false once fd 2 failed: nowhere left to report to */
    int tty_raw;        /* saved_tty must be restored */
    struct termios saved_tty;
    struct buf out; /* frames not yet accepted by the socket */
    struct buf in;  /* bytes received, not yet a whole frame */
};

static void put_u16(unsigned char *p, unsigned v) { p[0] = v >> 8; p[1] = v; }

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void restore_tty(struct session *s)
{
    if (s->tty_raw && tcsetattr(STDIN_FILENO, TCSANOW, &s->saved_tty) == 0)
        s->tty_raw = 0;
}

/* Restore the terminal first: a message printed in raw mode would lose its carriage return. */
static int fail(struct session *s, int status, const char *fmt, ...)
{
    va_list ap;
    restore_tty(s);
    if (s->stderr_ok) {
        char msg[1024];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        dprintf(STDERR_FILENO, SHIM_NAME ": %s\n", msg);
    }
    return status;
}

/* Keep our own descriptors off 0-2: if the caller closed stdout, a socket landing on fd 1
 * would receive the command's output as if it were frames. */
static int move_above_stdio(int fd)
{
    if (fd < 0 || fd > STDERR_FILENO)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return high;
}

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->len + extra;
    unsigned char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Appends a frame header and returns where its payload goes (NULL when out of memory). */
static unsigned char *frame_begin(struct buf *b, enum frame_type type, size_t len)
{
    if (buf_reserve(b, HEADER_LEN + len) < 0)
        return NULL;
    unsigned char *hdr = b->data + b->len;
    hdr[0] = type;
    put_u32(hdr + 1, len);
    b->len += HEADER_LEN + len;
    return hdr + HEADER_LEN;
}

static int queue_frame(struct session *s, enum frame_type type, const void *payload, size_t len)
{
    if (!s->bridge_reading)
        return RUNNING; /* nobody will read it; the bridge's EXIT or EOF decides the end */
    unsigned char *p = frame_begin(&s->out, type, len);
    if (!p)
        return fail(s, STATUS_BRIDGE_FAILED, "out of memory");
    if (len)
        memcpy(p, payload, len);
    return RUNNING;
}

static struct winsize window_size(void)
{
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
        memset(&ws, 0, sizeof ws);
    return ws;
}

/* Our supplementary groups (NULL and 0 when there are none or they cannot be read). */
static gid_t *caller_groups(size_t *count)
{
    *count = 0;
    for (;;) {
        int n = getgroups(0, NULL);
        if (n <= 0)
            return NULL;
        gid_t *groups = malloc(n * sizeof *groups);
        if (!groups)
            return NULL;
        int got = getgroups(n, groups);
        if (got >= 0) {
            *count = got;
            return groups;
        }
        free(groups);
        if (errno != EINVAL) /* EINVAL: they grew in between, ask again */
            return NULL;
    }
}

static int queue_start(struct session *s, char **argv, size_t argc, char **env)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "/");

    size_t ngroups;
    gid_t *groups = caller_groups(&ngroups);
    size_t len = START_FIXED_LEN + 4 * ngroups + strlen(cwd) + 1;
    for (size_t i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    if (len > MAX_PAYLOAD) {
        free(groups);
        return fail(s, STATUS_TOO_LONG, "the command line is too long for the bridge "
                    "(%zu bytes, limit %u)", len, MAX_PAYLOAD);
    }
    /* The bridge filters the environment anyway, so a huge one is cut, not refused. */
    size_t envc = 0;
    for (; env && env[envc]; envc++) {
        size_t n = strlen(env[envc]) + 1;
        if (len + n > MAX_PAYLOAD)
            break;
        len += n;
    }

    unsigned char *p = frame_begin(&s->out, FT_START, len);
    if (!p) {
        free(groups);
        return fail(s, STATUS_BRIDGE_FAILED, "out of memory");
    }
    struct winsize ws = s->pty ? window_size() : (struct winsize){0};
    p[0] = PROTOCOL_VERSION;
    p[1] = s->pty ? 1 : 0;
    put_u16(p + 2, ws.ws_row);
    put_u16(p + 4, ws.ws_col);
    put_u32(p + 6, argc);
    put_u32(p + 10, envc);
    /* Effective ids: what the kernel checks our file accesses against, and what a command we
     * exec'd locally would run with. The bridge decides what to make of them (--exec-user). */
    put_u32(p + 14, geteuid());
    put_u32(p + 18, getegid());
    put_u32(p + 22, ngroups);
    p += START_FIXED_LEN;
    for (size_t i = 0; i < ngroups; i++, p += 4)
        put_u32(p, groups[i]);
    free(groups);
    p = (unsigned char *)stpcpy((char *)p, cwd) + 1;
    for (size_t i = 0; i < argc; i++)
        p = (unsigned char *)stpcpy((char *)p, argv[i]) + 1;
    for (size_t i = 0; i < envc; i++)
        p = (unsigned char *)stpcpy((char *)p, env[i]) + 1;
    return RUNNING;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = sig;
    ssize_t r = write(sig_pipe_wr, &b, 1); /* pipe full: the signal is dropped, never blocks */
    (void)r;
    errno = saved;
}

static int install_signals(struct session *s)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "pipe: %s", strerror(errno));
    s->sig_rd = move_above_stdio(fds[0]);
    sig_pipe_wr = move_above_stdio(fds[1]);
    if (s->sig_rd < 0 || sig_pipe_wr < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "fcntl: %s", strerror(errno));

    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART }, old;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) {
        int sig = forwarded_signals[i];
        if (sigaction(sig, NULL, &old) < 0)
            return fail(s, STATUS_BRIDGE_FAILED, "sigaction: %s", strerror(errno));
        /* Inherited SIG_IGN (nohup, a background job's SIGINT) stays: a local command
         * would not have felt that signal either. */
        if (old.sa_handler != SIG_IGN && sigaction(sig, &sa, NULL) < 0)
            return fail(s, STATUS_BRIDGE_FAILED, "sigaction: %s", strerror(errno));
    }
    /* A closed stdout or a vanished bridge must show up as EPIPE where we can act on it. */
    struct sigaction ign = { .sa_handler = SIG_IGN };
    if (sigaction(SIGPIPE, &ign, NULL) < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "sigaction: %s", strerror(errno));
    return RUNNING;
}

/* The remote pty does all line editing and signal generation (^C arrives there as a byte). */
static int enter_raw_mode(struct session *s)
{
    if (tcgetattr(STDIN_FILENO, &s->saved_tty) < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "tcgetattr: %s", strerror(errno));
    struct termios raw = s->saved_tty;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "tcsetattr: %s", strerror(errno));
    s->tty_raw = 1;
    return RUNNING;
}

static int connect_bridge(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = move_above_stdio(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd < 0)
        return -1;
    /* connect() blocking: a busy bridge with a full backlog makes us wait, not fail. */
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&addr, sizeof addr)) < 0 && errno == EINTR)
        ;
    int flags = rc == 0 ? fcntl(fd, F_GETFL) : -1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Blocking by design: a slow reader of our output slows the remote process, because we
 * stop reading the socket meanwhile. EAGAIN only happens if a parent left fd O_NONBLOCK. */
static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n >= 0) {
            p += n;
            len -= n;
        } else if (errno == EAGAIN) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return errno;
        } else if (errno != EINTR) {
            return errno;
        }
    }
    return 0;
}

static int handle_output(struct session *s, int fd, const unsigned char *p, size_t len)
{
    if (fd == STDERR_FILENO) {
        if (s->stderr_ok && write_all(fd, p, len) != 0)
            s->stderr_ok = 0; /* nowhere to complain; the command's status still matters */
        return RUNNING;
    }
    int err = write_all(fd, p, len);
    if (err == EPIPE) {
        restore_tty(s);
        return STATUS_STDOUT_EPIPE;
    }
    if (err)
        return fail(s, STATUS_BRIDGE_FAILED, "cannot write to standard output: %s", strerror(err));
    return RUNNING;
}

static int handle_frame(struct session *s, int type, const unsigned char *p, uint32_t len)
{
    switch (type) {
    case FT_STDOUT:
        return handle_output(s, STDOUT_FILENO, p, len);
    case FT_STDERR:
        return handle_output(s, STDERR_FILENO, p, len);
    case FT_EXIT: {
        if (len != 5 || p[0] > 1)
            return fail(s, STATUS_BRIDGE_FAILED, "protocol error: malformed EXIT frame from the bridge");
        uint32_t value = get_u32(p + 1); /* as the low byte of an i32, like exit() would */
        restore_tty(s);
        return (int)((p[0] == 0 ? value : 128 + value) & 0xff);
    }
    case FT_ERROR:
        if (len < 1)
            return fail(s, STATUS_BRIDGE_FAILED, "protocol error: empty ERROR frame from the bridge");
        restore_tty(s);
        if (s->stderr_ok) /* not through fail(): its buffer would cut a long message */
            dprintf(STDERR_FILENO, SHIM_NAME ": %.*s\n", (int)(len - 1), (const char *)p + 1);
        return p[0];
    default:
        return fail(s, STATUS_BRIDGE_FAILED, "protocol error: unknown frame type 0x%02x from the bridge", type);
    }
}

static int read_bridge(struct session *s)
{
    struct buf *in = &s->in;
    ssize_t n = read(s->sock, in->data + in->len, in->cap - in->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RUNNING;
    if (n <= 0) /* EOF, or ECONNRESET/other: the kernel hands us queued data before either */
        return fail(s, STATUS_BRIDGE_FAILED, "the bridge closed the connection before the command finished");
    in->len += n;

    size_t pos = 0;
    int status = RUNNING;
    while (status == RUNNING && in->len - pos >= HEADER_LEN) {
        const unsigned char *hdr = in->data + pos;
        uint32_t len = get_u32(hdr + 1);
        /* Checked as soon as the header is in, so a bogus length is never waited for. */
        if (len > MAX_PAYLOAD)
            return fail(s, STATUS_BRIDGE_FAILED, "protocol error: the bridge sent a %lu-byte frame "
                        "(limit %u)", (unsigned long)len, MAX_PAYLOAD);
        if (in->len - pos < HEADER_LEN + len)
            break;
        status = handle_frame(s, hdr[0], hdr + HEADER_LEN, len);
        pos += HEADER_LEN + len;
    }
    memmove(in->data, in->data + pos, in->len - pos);
    in->len -= pos;
    return status;
}

static int flush_out(struct session *s)
{
    struct buf *out = &s->out;
    while (out->off < out->len) {
        ssize_t n = send(s->sock, out->data + out->off, out->len - out->off, MSG_NOSIGNAL);
        if (n >= 0) {
            out->off += n;
        } else if (errno == EAGAIN) {
            return RUNNING;
        } else if (errno != EINTR) {
            /* The bridge stopped reading (it may have finished: `true < big`). Its EXIT
             * or the EOF that follows is still ours to read, so only stop sending. */
            s->bridge_reading = 0;
            s->stdin_open = 0;
            out->off = out->len = 0;
            return RUNNING;
        }
    }
    out->off = out->len = 0;
    return RUNNING;
}

/* Reads straight into the outgoing buffer behind a header, then fills the header in. */
static int read_stdin(struct session *s)
{
    if (buf_reserve(&s->out, HEADER_LEN + STDIN_CHUNK) < 0)
        return fail(s, STATUS_BRIDGE_FAILED, "out of memory");
    unsigned char *hdr = s->out.data + s->out.len;
    ssize_t n = read(STDIN_FILENO, hdr + HEADER_LEN, STDIN_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RUNNING;
    if (n > 0) {
        hdr[0] = FT_STDIN;
        put_u32(hdr + 1, n);
        s->out.len += HEADER_LEN + n;
        return RUNNING;
    }
    /* EOF, or an error that means there will never be input (EBADF, EIO on a lost tty). */
    s->stdin_open = 0;
    return queue_frame(s, FT_STDIN_EOF, NULL, 0);
}

static int handle_signals(struct session *s)
{
    unsigned char sigs[64];
    ssize_t n;
    while ((n = read(s->sig_rd, sigs, sizeof sigs)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            int status;
            if (sigs[i] == SIGWINCH && s->pty) {
                struct winsize ws = window_size();
                unsigned char p[4];
                put_u16(p, ws.ws_row);
                put_u16(p + 2, ws.ws_col);
                status = queue_frame(s, FT_WINSIZE, p, sizeof p);
            } else {
                status = queue_frame(s, FT_SIGNAL, &sigs[i], 1);
            }
            if (status != RUNNING)
                return status;
        }
    }
    return RUNNING;
}

static int pump(struct session *s)
{
    int status = RUNNING;
    while (status == RUNNING) {
        int want_stdin = s->stdin_open && s->out.off == s->out.len;
        struct pollfd fds[3] = {
            { .fd = s->sock, .events = POLLIN | (s->out.off < s->out.len ? POLLOUT : 0) },
            { .fd = s->sig_rd, .events = POLLIN },
            { .fd = want_stdin ? STDIN_FILENO : -1, .events = POLLIN },
        };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return fail(s, STATUS_BRIDGE_FAILED, "poll: %s", strerror(errno));
        }
        if (fds[1].revents)
            status = handle_signals(s);
        if (status == RUNNING && fds[0].revents & (POLLIN | POLLHUP | POLLERR))
            status = read_bridge(s);
        if (status == RUNNING && fds[0].revents & (POLLOUT | POLLERR))
            status = flush_out(s);
        /* POLLNVAL too: a closed fd 0 reads as EBADF, which read_stdin treats as EOF. */
        if (status == RUNNING && s->stdin_open && fds[2].revents)
            status = read_stdin(s);
    }
    return status;
}

static int usage(void)
{
    dprintf(STDERR_FILENO, "usage: " SHIM_NAME " COMMAND [ARG...]\n"
            "   or: COMMAND [ARG...] through a symlink named COMMAND pointing to " SHIM_NAME "\n"
            "Runs COMMAND through the splitbrain bridge at $SPLITBRAIN_BRIDGE_SOCKET"
            " (default " DEFAULT_SOCKET ").\n");
    return STATUS_USAGE;
}

static int run(struct session *s, char **argv, size_t argc, char **env)
{
    const char *path = getenv("SPLITBRAIN_BRIDGE_SOCKET");
    if (!path || !*path)
        path = DEFAULT_SOCKET;
    if ((s->sock = connect_bridge(path)) < 0)
        return fail(s, STATUS_UNREACHABLE, "cannot reach the bridge at %s: %s", path, strerror(errno));

    /* fd 0 closed or write-only means no input: that is EOF, not an error. */
    int fl = fcntl(STDIN_FILENO, F_GETFL);
    int stdin_readable = fl >= 0 && (fl & O_ACCMODE) != O_WRONLY;
    s->pty = stdin_readable && isatty(STDIN_FILENO);

    s->stdin_open = stdin_readable;
    s->in.cap = HEADER_LEN + MAX_PAYLOAD;
    if (!(s->in.data = malloc(s->in.cap)))
        return fail(s, STATUS_BRIDGE_FAILED, "out of memory");

    int status; /* signals first, so a resize while START is built is not missed */
    if ((status = install_signals(s)) != RUNNING || (status = queue_start(s, argv, argc, env)) != RUNNING)
        return status;
    if (!stdin_readable && (status = queue_frame(s, FT_STDIN_EOF, NULL, 0)) != RUNNING)
        return status;
    if (s->pty && (status = enter_raw_mode(s)) != RUNNING)
        return status;
    return pump(s);
}

int main(int argc, char **argv)
{
    extern char **environ;
    if (argc < 1 || !argv[0])
        return usage();
    const char *self = base_name(argv[0]);
    char **cmd = argv;
    size_t cmdc = argc;
    if (strcmp(self, SHIM_NAME) == 0) {
        if (argc < 2)
            return usage();
        cmd++;
        cmdc--;
    } else {
        argv[0] = (char *)self; /* the slave resolves the name on its own PATH */
    }

    struct session s = { .sock = -1, .sig_rd = -1, .bridge_reading = 1, .stderr_ok = 1 };
    int status = run(&s, cmd, cmdc, environ);
    restore_tty(&s); /* every path ends here, even when a step already restored it */
    return status;
}
