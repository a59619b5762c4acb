/*
 * A link with a real round trip, in user space (this kernel has no netem): a TCP proxy on
 * loopback that hands every byte on DELAY_MS after it arrived, each way, in order, without
 * holding up what follows it (a pipe of that latency, not a stop-and-wait hop), so throughput
 * is what the ends make of it. The bench puts one between the agent and its nats-server, one in
 * front of the agent's links and one between sshfs and its sshd.
 *
 *   delay-proxy DELAY_MS TARGET_PORT   (prints "listening on 127.0.0.1:PORT")
 *
 * Native because the delay is what the bench measures against. Node's timers count whole
 * milliseconds and fire on the event loop's turn after they are due: the proxy this replaces
 * (bench/delay-proxy.ts, setTimeout per chunk) turned D = 1 ms into a round trip of 3.7 ms at
 * the median where 2.2 ms was due (2 x 1 ms and the loopback's 0.2), and D = 5 ms into 12.8 ms
 * for 10.2. Here each direction has a reader thread that stamps a chunk when read(2) returns
 * it and a writer thread that sleeps until exactly that stamp plus DELAY_MS
 * (clock_nanosleep, TIMER_ABSTIME on CLOCK_MONOTONIC) before writing it on.
 *
 * A direction holding HIGH_WATER bytes stops reading: TCP then pushes back on the sender, as
 * a real link would. The end of one side is handed on once what it sent is out: a clean end
 * as a half-close (shutdown SHUT_WR), a reset by taking the other side down too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIGH_WATER (8u * 1024u * 1024u)
#define READ_SIZE (64u * 1024u)

struct chunk {
    struct chunk *next;
    struct timespec due;
    size_t len;
    char data[];
};

struct pair;

/* One way through the proxy: bytes read from `from`, written to `to` once due. */
struct direction {
    int from, to;
    pthread_mutex_t lock;
    pthread_cond_t data; /* the writer waits for a chunk or the end */
    pthread_cond_t room; /* the reader waits for the queue to fall below HIGH_WATER */
    struct chunk *head, *tail;
    size_t queued;
    int ended;  /* 0 reading; 1 the sender ended cleanly; 2 it failed (reset) */
    int broken; /* the writer could not write on: the reader stops */
    struct pair *pair;
};

struct pair {
    struct direction way[2];
    atomic_int threads; /* the last of the four to finish closes both sockets */
};

static long long delay_ns;

static void timespec_add_ns(struct timespec *t, long long ns) {
    long long total = (long long)t->tv_nsec + ns;
    t->tv_sec += (time_t)(total / 1000000000LL);
    t->tv_nsec = (long)(total % 1000000000LL);
}

static void thread_done(struct pair *p) {
    if (atomic_fetch_sub(&p->threads, 1) != 1) return;
    close(p->way[0].from);
    close(p->way[0].to);
    for (int i = 0; i < 2; i++) {
        struct direction *d = &p->way[i];
        for (struct chunk *c = d->head, *next; c != NULL; c = next) {
            next = c->next;
            free(c);
        }
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->data);
        pthread_cond_destroy(&d->room);
    }
    free(p);
}

static void *reader(void *arg) {
    struct direction *d = arg;
    char *buffer = malloc(READ_SIZE);
    int ended = buffer == NULL ? 2 : 0;
    while (ended == 0) {
        pthread_mutex_lock(&d->lock);
        while (d->queued >= HIGH_WATER && !d->broken) pthread_cond_wait(&d->room, &d->lock);
        int broken = d->broken;
        pthread_mutex_unlock(&d->lock);
        if (broken) {
            ended = 2;
            break;
        }
        ssize_t n = read(d->from, buffer, READ_SIZE);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ended = n == 0 ? 1 : 2;
            break;
        }
        struct chunk *c = malloc(sizeof *c + (size_t)n);
        if (c == NULL) {
            ended = 2;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &c->due);
        timespec_add_ns(&c->due, delay_ns);
        c->next = NULL;
        c->len = (size_t)n;
        memcpy(c->data, buffer, (size_t)n);
        pthread_mutex_lock(&d->lock);
        if (d->tail != NULL) d->tail->next = c;
        else d->head = c;
        d->tail = c;
        d->queued += (size_t)n;
        pthread_cond_signal(&d->data);
        pthread_mutex_unlock(&d->lock);
    }
    free(buffer);
    pthread_mutex_lock(&d->lock);
    d->ended = ended;
    pthread_cond_signal(&d->data);
    pthread_mutex_unlock(&d->lock);
    thread_done(d->pair);
    return NULL;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *writer(void *arg) {
    struct direction *d = arg;
    int ended = 0;
    /* The default slack lets the kernel wake this thread up to 50 us late: the delay is the point. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    for (;;) {
        pthread_mutex_lock(&d->lock);
        while (d->head == NULL && d->ended == 0) pthread_cond_wait(&d->data, &d->lock);
        struct chunk *c = d->head; /* only this thread takes chunks off: it stays valid unlocked */
        ended = d->ended;
        pthread_mutex_unlock(&d->lock);
        if (c == NULL) break;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &c->due, NULL) == EINTR) {}
        if (write_all(d->to, c->data, c->len) != 0) {
            pthread_mutex_lock(&d->lock);
            d->broken = 1;
            pthread_cond_signal(&d->room);
            pthread_mutex_unlock(&d->lock);
            ended = 2;
            break;
        }
        pthread_mutex_lock(&d->lock);
        d->head = c->next;
        if (d->head == NULL) d->tail = NULL;
        d->queued -= c->len;
        pthread_cond_signal(&d->room);
        pthread_mutex_unlock(&d->lock);
        free(c);
    }
    if (ended == 1) {
        shutdown(d->to, SHUT_WR); /* the sender's clean end, after its last byte */
    } else {
        /* A reset, or a receiver gone: both sides go, which ends the other direction too (its
           reader sees an end, its writer an error). */
        shutdown(d->to, SHUT_RDWR);
        shutdown(d->from, SHUT_RDWR);
    }
    thread_done(d->pair);
    return NULL;
}

static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int connect_target(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int start_pair(int client, int upstream) {
    struct pair *p = calloc(1, sizeof *p);
    if (p == NULL) return -1;
    atomic_init(&p->threads, 4);
    for (int i = 0; i < 2; i++) {
        struct direction *d = &p->way[i];
        d->from = i == 0 ? client : upstream;
        d->to = i == 0 ? upstream : client;
        d->pair = p;
        pthread_mutex_init(&d->lock, NULL);
        pthread_cond_init(&d->data, NULL);
        pthread_cond_init(&d->room, NULL);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t thread;
    for (int i = 0; i < 2; i++) {
        /* Once one thread runs, the pair is theirs to free: a failure here cannot be undone. */
        if (pthread_create(&thread, &attr, writer, &p->way[i]) != 0
            || pthread_create(&thread, &attr, reader, &p->way[i]) != 0) {
            fprintf(stderr, "delay-proxy: cannot start a connection's threads: %s\n", strerror(errno));
            exit(1);
        }
    }
    pthread_attr_destroy(&attr);
    return 0;
}

static void on_signal(int signal) {
    (void)signal;
    _exit(0);
}

int main(int argc, char **argv) {
    char *end = NULL;
    double delay_ms = argc == 3 ? strtod(argv[1], &end) : -1;
    long port = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    if (argc != 3 || end == argv[1] || *end != '\0' || !(delay_ms >= 0 && delay_ms <= 60000) || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: delay-proxy DELAY_MS TARGET_PORT\n");
        return 2;
    }
    delay_ns = (long long)(delay_ms * 1e6);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = 0 };
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof at;
    if (listener < 0 || bind(listener, (struct sockaddr *)&at, sizeof at) != 0 || listen(listener, 64) != 0
        || getsockname(listener, (struct sockaddr *)&at, &len) != 0) {
        fprintf(stderr, "delay-proxy: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(at.sin_port));
    fflush(stdout);

    for (;;) {
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) { /* out of descriptors: a connection must end first */
                usleep(10000);
                continue;
            }
            fprintf(stderr, "delay-proxy: accept: %s\n", strerror(errno));
            return 1;
        }
        int upstream = connect_target((int)port);
        if (upstream < 0) {
            fprintf(stderr, "delay-proxy: cannot reach 127.0.0.1:%ld: %s\n", port, strerror(errno));
            close(client);
            continue;
        }
        no_delay(client);
        no_delay(upstream);
        if (start_pair(client, upstream) != 0) {
            close(client);
            close(upstream);
        }
    }
}
