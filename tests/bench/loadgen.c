/* The MQTT 3.1.1 load client of bench_broker_vs_mosquitto.py: one thread, epoll, many connections.
 *
 * Built by the benchmark itself (gcc -O2), so that the same client drives Mosquitto and
 * openblynk in one run and is shown not to be the limit (it must drive Mosquitto far above
 * openblynk). It reads commands on stdin, one a line, and answers each with one line on stdout;
 * progress goes to stderr once a second.
 *
 *   group <name> <file>       connect every client listed in <file>, one a line:
 *                             "<client_id> <username> <password> <clean 0|1> <filter or -> <topic or ->"
 *                             (filter: SUBSCRIBE at QoS 1 once connected; topic: what it publishes to)
 *                             -> "ok <connected> <seconds> <failed>"
 *   sub <name>                the clients of group <name> count and acknowledge what they receive
 *   run <group> <messages> <window> <qos> <rate> <expect> <timesfile or ->
 *                             every client of <group> publishes <messages> values (payload: the
 *                             value's index as text) with at most <window> unacknowledged (QoS 1),
 *                             all together at most <rate> a second (0: no limit); the run ends once
 *                             every QoS 1 value is acknowledged (QoS 0: written) and the subscribers
 *                             received <expect> messages in this run.
 *                             -> "done <sent> <acked> <received> <t_start> <t_last_ack> <t_last_received>"
 *                             (times: CLOCK_REALTIME seconds). <timesfile>: for each client and value,
 *                             its send and acknowledgement times (two doubles), client by client.
 *   close <name>              DISCONNECT and close the group's connections -> "ok"
 *   quit
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 16
#define CONNECTING_AT_ONCE 64

typedef struct {
    unsigned char *b;
    size_t len, off, cap;
} buf_t;

typedef struct conn {
    int fd, state; /* 0 tcp connecting, 1 CONNACK awaited, 2 SUBACK awaited, 3 ready, -1 dead */
    int group, index, subscriber;
    char *cid, *user, *pass, *filter, *topic;
    int clean;
    buf_t out, in;
    long sent, acked, inflight;
    unsigned char *pubhead; /* fixed part of this client's PUBLISH: topic */
    size_t topiclen;
} conn_t;

typedef struct {
    char name[256];
    conn_t **c;
    int n;
} group_t;

static int port, ep;
static group_t groups[MAX_GROUPS];
static int ngroups;
static long received_total;
static double last_received;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return;
    if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    b->b = realloc(b->b, cap);
    b->cap = cap;
}

static void put(buf_t *b, const void *p, size_t n) {
    reserve(b, n);
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

static size_t remlen(unsigned char *p, size_t n) {
    size_t i = 0;
    do {
        unsigned char byte = n % 128;
        n /= 128;
        if (n) byte |= 0x80;
        p[i++] = byte;
    } while (n);
    return i;
}

static void put_str(buf_t *b, const char *s) {
    size_t n = strlen(s);
    unsigned char h[2] = {n >> 8, n & 0xff};
    put(b, h, 2);
    put(b, s, n);
}

static void packet(buf_t *b, unsigned char first, const unsigned char *body, size_t n) {
    unsigned char h[5];
    h[0] = first;
    size_t k = remlen(h + 1, n);
    put(b, h, 1 + k);
    put(b, body, n);
}

static void flush(conn_t *c) {
    while (c->out.off < c->out.len) {
        ssize_t w = send(c->fd, c->out.b + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            c->state = -1;
            return;
        }
        c->out.off += w;
    }
    if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
    struct epoll_event ev = {.events = EPOLLIN | (c->out.len ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_connect(conn_t *c) {
    buf_t body = {0};
    unsigned char vh[10] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0xC0 | (c->clean ? 2 : 0), 600 >> 8, 600 & 0xff};
    put(&body, vh, 10);
    put_str(&body, c->cid);
    put_str(&body, c->user);
    put_str(&body, c->pass);
    packet(&c->out, 0x10, body.b, body.len);
    free(body.b);
}

static void send_subscribe(conn_t *c) {
    buf_t body = {0};
    unsigned char id[2] = {0, 1}, qos = 1;
    put(&body, id, 2);
    put_str(&body, c->filter);
    put(&body, &qos, 1);
    packet(&c->out, 0x82, body.b, body.len);
    free(body.b);
}

static void start_connect(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->state = 0;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        c->state = -1;
        return;
    }
    send_connect(c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* send/ack times of the run in progress */
static double *t_send, *t_ack;
static long run_messages;
static double last_ack;

static void on_packet(conn_t *c, unsigned char *p, size_t n, size_t hdr) {
    unsigned char type = p[0] >> 4;
    if (type == 2) { /* CONNACK */
        if (n < hdr + 2 || p[hdr + 1] != 0) {
            c->state = -1;
            return;
        }
        if (c->filter) {
            send_subscribe(c);
            c->state = 2;
        } else {
            c->state = 3;
        }
    } else if (type == 9) { /* SUBACK */
        c->state = p[n - 1] == 0x80 ? -1 : 3;
    } else if (type == 4) { /* PUBACK */
        unsigned pid = (p[hdr] << 8) | p[hdr + 1];
        long s = c->sent - 1;
        long d = ((s % 65535) - (long)(pid - 1) + 65535) % 65535;
        long seq = s - d;
        c->acked++;
        c->inflight--;
        double t = now();
        last_ack = t;
        if (t_ack && seq >= 0 && seq < run_messages) t_ack[(long)c->index * run_messages + seq] = t;
    } else if (type == 3) { /* PUBLISH */
        int qos = (p[0] >> 1) & 3;
        if (c->subscriber) {
            received_total++;
            last_received = now();
        }
        if (qos == 1) {
            size_t tl = (p[hdr] << 8) | p[hdr + 1];
            unsigned char ack[4] = {0x40, 2, p[hdr + 2 + tl], p[hdr + 3 + tl]};
            put(&c->out, ack, 4);
        }
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        reserve(&c->in, 16384);
        ssize_t r = recv(c->fd, c->in.b + c->in.len, c->in.cap - c->in.len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            c->state = -1;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            return;
        }
        if (r < 0) break;
        c->in.len += r;
        for (;;) {
            size_t avail = c->in.len - c->in.off, n = 0, mult = 1, i = 1;
            unsigned char *p = c->in.b + c->in.off;
            if (avail < 2) break;
            int whole = 0;
            for (; i < avail && i < 5; i++) {
                n += (p[i] & 0x7f) * mult;
                mult *= 128;
                if (!(p[i] & 0x80)) {
                    whole = 1;
                    break;
                }
            }
            if (!whole) break;
            size_t hdr = i + 1;
            if (avail < hdr + n) break;
            on_packet(c, p, hdr + n, hdr);
            c->in.off += hdr + n;
        }
        if (c->in.off == c->in.len) {
            c->in.off = c->in.len = 0;
            if (!c->topic && !c->subscriber) { /* an idle client keeps no buffer */
                free(c->in.b);
                c->in.b = NULL;
                c->in.cap = 0;
                break;
            }
        } else if (c->in.off > 0) {
            memmove(c->in.b, c->in.b + c->in.off, c->in.len - c->in.off);
            c->in.len -= c->in.off;
            c->in.off = 0;
        }
        if ((size_t)r < 16384) break;
    }
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int k = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < k; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->state < 0) continue;
        if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
            c->state = -1;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            continue;
        }
        if (evs[i].events & EPOLLIN) on_readable(c);
        if (c->state == 0) c->state = 1;
        if (c->state >= 0) flush(c);
    }
}

static char *dup_field(const char *s) { return strcmp(s, "-") == 0 ? NULL : strdup(s); }

static void cmd_group(const char *name, const char *file) {
    FILE *f = fopen(file, "r");
    if (!f || ngroups == MAX_GROUPS) {
        printf("error cannot read %s\n", file);
        return;
    }
    group_t *g = &groups[ngroups];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->c = NULL;
    g->n = 0;
    char cid[256], user[256], pass[512], filter[256], topic[256];
    int clean, cap = 0;
    while (fscanf(f, "%255s %255s %511s %d %255s %255s", cid, user, pass, &clean, filter, topic) == 6) {
        if (g->n == cap) g->c = realloc(g->c, sizeof(conn_t *) * (cap = cap ? cap * 2 : 64));
        conn_t *c = calloc(1, sizeof(conn_t));
        c->cid = strdup(cid);
        c->user = strdup(user);
        c->pass = strdup(pass);
        c->filter = dup_field(filter);
        c->topic = dup_field(topic);
        c->clean = clean;
        c->group = ngroups;
        c->index = g->n;
        c->fd = -1;
        if (c->topic) {
            size_t tl = strlen(c->topic);
            c->pubhead = malloc(tl + 2);
            c->pubhead[0] = tl >> 8;
            c->pubhead[1] = tl & 0xff;
            memcpy(c->pubhead + 2, c->topic, tl);
            c->topiclen = tl + 2;
        }
        g->c[g->n++] = c;
    }
    fclose(f);
    ngroups++;
    double t0 = now(), last = t0;
    int next = 0, pending = 0, ready = 0, failed = 0;
    while (ready + failed < g->n) {
        while (next < g->n && pending < CONNECTING_AT_ONCE) {
            start_connect(g->c[next++]);
            pending++;
        }
        poll_once(10);
        ready = failed = pending = 0;
        for (int i = 0; i < next; i++) {
            int s = g->c[i]->state;
            ready += s == 3;
            failed += s < 0;
            pending += s >= 0 && s < 3;
        }
        if (now() - last >= 1) {
            last = now();
            fprintf(stderr, "  [load] %s: %d of %d connected\n", name, ready, g->n);
        }
        if (now() - t0 > 300) break;
    }
    printf("ok %d %.6f %d\n", ready, now() - t0, failed);
}

static group_t *find(const char *name) {
    for (int i = 0; i < ngroups; i++)
        if (strcmp(groups[i].name, name) == 0) return &groups[i];
    return NULL;
}

static void publish(conn_t *c, int qos) {
    char payload[24];
    int pl = snprintf(payload, sizeof payload, "%ld", c->sent);
    unsigned char h[5];
    size_t body = c->topiclen + (qos ? 2 : 0) + pl;
    h[0] = 0x30 | (qos << 1);
    size_t k = remlen(h + 1, body);
    reserve(&c->out, 1 + k + body);
    put(&c->out, h, 1 + k);
    put(&c->out, c->pubhead, c->topiclen);
    if (qos) {
        unsigned pid = c->sent % 65535 + 1;
        unsigned char id[2] = {pid >> 8, pid & 0xff};
        put(&c->out, id, 2);
        c->inflight++;
    }
    put(&c->out, payload, pl);
    if (t_send) t_send[(long)c->index * run_messages + c->sent] = now();
    c->sent++;
}

static void cmd_run(const char *name, long messages, long window, int qos, double rate, long expect, const char *timesfile) {
    group_t *g = find(name);
    if (!g) {
        printf("error no group %s\n", name);
        return;
    }
    run_messages = messages;
    long total = messages * g->n;
    if (strcmp(timesfile, "-") != 0) {
        t_send = calloc(total, sizeof(double));
        t_ack = calloc(total, sizeof(double));
    }
    for (int i = 0; i < g->n; i++) g->c[i]->sent = g->c[i]->acked = g->c[i]->inflight = 0;
    long received0 = received_total;
    double t0 = now(), last_progress = t0;
    last_ack = last_received = 0;
    long sent = 0, acked = 0, seen = received_total;
    double seen_at = t0;
    int rr = 0;
    for (;;) {
        long sent_before = sent;
        long allowed = rate > 0 ? (long)((now() - t0) * rate) + 1 - sent : total;
        int alive = 0;
        /* round robin over the clients, so that a rate limit spreads over all of them */
        for (int j = 0; j < g->n && allowed > 0; j++) {
            conn_t *c = g->c[(rr + j) % g->n];
            if (c->state != 3) continue;
            alive++;
            int burst = 0;
            while (c->sent < messages && allowed > 0 && (qos == 0 || c->inflight < window) && burst < 64) {
                publish(c, qos);
                sent++;
                allowed--;
                burst++;
                if (rate > 0) break;
            }
            if (burst) flush(c);
        }
        rr = (rr + 1) % (g->n ? g->n : 1);
        poll_once(sent > sent_before ? 0 : rate > 0 ? 1 : 5); /* nothing to send: wait for the socket */
        acked = 0;
        alive = 0;
        for (int i = 0; i < g->n; i++) {
            acked += g->c[i]->acked;
            alive += g->c[i]->state == 3;
        }
        int pubs_done = qos ? acked >= total : sent >= total;
        if (qos == 0 && pubs_done) {
            for (int i = 0; i < g->n; i++)
                if (g->c[i]->out.len) pubs_done = 0;
        }
        if (pubs_done && received_total - received0 >= expect) break;
        double t = now();
        if (received_total != seen) {
            seen = received_total;
            seen_at = t;
        }
        if (pubs_done && t - seen_at > 10) break; /* the rest was dropped (QoS 0) or is not coming */
        if (t - last_progress >= 1) {
            last_progress = t;
            fprintf(stderr, "  [load] %s: sent %ld, acknowledged %ld, received %ld of %ld (%.0f s)\n", name, sent,
                    acked, received_total - received0, total, t - t0);
        }
        if (alive == 0 || t - t0 > 600) break;
    }
    printf("done %ld %ld %ld %.6f %.6f %.6f\n", sent, acked, received_total - received0, t0, last_ack, last_received);
    if (t_send) {
        FILE *f = fopen(timesfile, "wb");
        for (long i = 0; i < total; i++) {
            fwrite(&t_send[i], sizeof(double), 1, f);
            fwrite(&t_ack[i], sizeof(double), 1, f);
        }
        fclose(f);
        free(t_send);
        free(t_ack);
        t_send = t_ack = NULL;
    }
}

static void cmd_close(const char *name) {
    group_t *g = find(name);
    if (!g) {
        printf("error no group %s\n", name);
        return;
    }
    for (int i = 0; i < g->n; i++) {
        conn_t *c = g->c[i];
        if (c->state >= 0) {
            unsigned char d[2] = {0xe0, 0};
            send(c->fd, d, 2, MSG_NOSIGNAL);
        }
        if (c->fd >= 0) close(c->fd);
        c->state = -1;
    }
    g->name[0] = 0;
    printf("ok\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: loadgen <port>\n");
        return 2;
    }
    port = atoi(argv[1]);
    ep = epoll_create1(0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char a[256], b[256], f[1024];
        long m, w, e;
        int q;
        double r;
        if (sscanf(line, "group %255s %1023s", a, f) == 2) cmd_group(a, f);
        else if (sscanf(line, "sub %255s", a) == 1) {
            group_t *g = find(a);
            if (g)
                for (int i = 0; i < g->n; i++) g->c[i]->subscriber = 1;
            printf(g ? "ok\n" : "error no group\n");
        } else if (sscanf(line, "run %255s %ld %ld %d %lf %ld %1023s", a, &m, &w, &q, &r, &e, f) == 7)
            cmd_run(a, m, w, q, r, e, f);
        else if (sscanf(line, "close %255s", a) == 1) cmd_close(a);
        else if (strncmp(line, "quit", 4) == 0) break;
        else printf("error %s", line);
        (void)b;
    }
    return 0;
}
