/* What acknowledged delivery costs, measured at the C ABI (no Python in the loop).
 *
 *   cc -O2 -std=c99 -D_GNU_SOURCE perf/lease_cost.c -ldl -o target/lease_cost
 *   target/lease_cost NEW.so [OLD.so]
 *
 * 1. Same process, put+get of 8 bytes on a plain queue: library NEW against OLD (an A/B of the
 *    redeliver=False hot path), 101 interleaved rounds, median of the rounds' ratios (only
 *    with OLD.so).
 * 2. Same process, put+get(+task_done) of 8 B and 1 MiB: redeliver against plain, interleaved
 *    (with OLD.so: for each library, and the two libraries' redeliver paths against each other).
 * 3. One producer, four consumer processes (get + task_done each): messages per second,
 *    redeliver against plain, interleaved; 8 B (200000 messages, capacity 256) and 1 MiB
 *    (2000 messages, capacity 8), median of 5 runs each.
 *    Skipped when LEASE_COST_NO_FAN is set.
 * Medians and the median of the rounds' ratios are printed; absolute figures depend on the
 * machine and its load. */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fq_queue fq_queue;
typedef struct {
    int32_t (*create)(const char *, uint64_t, uint64_t, uint32_t, fq_queue **);
    int32_t (*create_ex)(const char *, uint64_t, uint64_t, uint32_t, uint32_t, uint64_t,
                         fq_queue **);
    int32_t (*open)(const char *, fq_queue **);
    int32_t (*put)(fq_queue *, const void *, uint64_t, int64_t);
    int32_t (*get)(fq_queue *, void *, uint64_t, uint64_t *, int64_t);
    int32_t (*task_done)(fq_queue *, uint64_t);
    void (*close)(fq_queue *);
    int32_t (*unlink)(const char *);
} lib;

static lib load(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); exit(1); }
    lib l;
    *(void **)&l.create = dlsym(h, "fq_create");
    *(void **)&l.create_ex = dlsym(h, "fq_create_ex");
    *(void **)&l.open = dlsym(h, "fq_open");
    *(void **)&l.put = dlsym(h, "fq_put");
    *(void **)&l.get = dlsym(h, "fq_get");
    *(void **)&l.task_done = dlsym(h, "fq_task_done");
    *(void **)&l.close = dlsym(h, "fq_close");
    *(void **)&l.unlink = dlsym(h, "fq_unlink");
    return l;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU time of this thread: a same-process loop never sleeps, so this leaves out the time the
 * thread waited for a core on a shared, loaded machine (wall time does not). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static fq_queue *make(lib *l, const char *name, uint64_t size, uint64_t cap, int redeliver) {
    fq_queue *q = NULL;
    l->unlink(name);
    int32_t s = redeliver ? l->create_ex(name, size, cap, 0600, 1, 0, &q)
                          : l->create(name, size, cap, 0600, &q);
    if (s != 0) { fprintf(stderr, "create %s: %d\n", name, s); exit(1); }
    return q;
}

/* ns (thread CPU time) per put+get (+task_done) over n messages. */
static double pingpong(lib *l, fq_queue *q, char *buf, uint64_t size, int n, int ack) {
    uint64_t len;
    double t0 = cpu_now();
    for (int i = 0; i < n; i++) {
        l->put(q, buf, size, -1);
        l->get(q, buf, size, &len, -1);
        if (ack) l->task_done(q, 1);
    }
    return (cpu_now() - t0) / n * 1e9;
}

#define ROUNDS 101

static void same_process(lib *a, lib *b, const char *what, uint64_t size, uint64_t cap, int n,
                         int ra, int rb) {
    char *buf = calloc(1, size);
    fq_queue *qa = make(a, "/fq-perf-lease-a", size, cap, ra);
    fq_queue *qb = make(b, "/fq-perf-lease-b", size, cap, rb);
    double va[ROUNDS], vb[ROUNDS], ratio[ROUNDS];
    pingpong(a, qa, buf, size, n, ra);
    pingpong(b, qb, buf, size, n, rb);
    for (int r = 0; r < ROUNDS; r++) {
        /* A and B in turns, the order alternating, so that drifts of a loaded machine hit
         * both alike; the ratio of each round's pair, then their median. */
        if (r % 2) {
            vb[r] = pingpong(b, qb, buf, size, n, rb);
            va[r] = pingpong(a, qa, buf, size, n, ra);
        } else {
            va[r] = pingpong(a, qa, buf, size, n, ra);
            vb[r] = pingpong(b, qb, buf, size, n, rb);
        }
        ratio[r] = vb[r] / va[r];
    }
    double ma = median(va, ROUNDS), mb = median(vb, ROUNDS);
    /* (median sorted va and vb: [0] is each one's fastest round, the least disturbed.) */
    printf("%-44s %10.1f ns %10.1f ns   ratio %.3f   (fastest rounds: %.1f / %.1f = %.3f)\n",
           what, ma, mb, median(ratio, ROUNDS), va[0], vb[0], vb[0] / va[0]);
    a->close(qa); b->close(qb);
    a->unlink("/fq-perf-lease-a"); b->unlink("/fq-perf-lease-b");
    free(buf);
}

/* Messages per second from one producer to four consumer processes. */
static double fan(lib *l, int redeliver, int n, uint64_t size, uint64_t cap) {
    const char *name = "/fq-perf-lease-fan";
    fq_queue *q = make(l, name, size, cap, redeliver);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        if ((kids[k] = fork()) == 0) {
            fq_queue *c;
            if (l->open(name, &c) != 0) _exit(2);
            char *b = malloc(size); uint64_t len;
            for (;;) {
                l->get(c, b, size, &len, -1);
                l->task_done(c, 1);
                if (len == 1) _exit(0);
            }
        }
    }
    char *m = calloc(1, size);
    double t0 = now();
    for (int i = 0; i < n; i++) l->put(q, m, size, -1);
    for (int k = 0; k < 4; k++) l->put(q, m, 1, -1);
    for (int k = 0; k < 4; k++) waitpid(kids[k], NULL, 0);
    double rate = n / (now() - t0);
    free(m);
    l->close(q);
    l->unlink(name);
    return rate;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s NEW.so [OLD.so]\n", argv[0]); return 2; }
    lib nw = load(argv[1]);
    printf("%-44s %13s %13s\n", "", "A", "B");
    if (argc > 2) {
        lib old = load(argv[2]);
        same_process(&old, &nw, "8 B put+get, plain: A old lib, B new lib", 8, 64, 20000, 0, 0);
    }
    fflush(stdout);
    if (!nw.create_ex) return 0; /* NEW.so predates fq_create_ex: the A/B only */
    if (argc > 2) {
        /* Before/after in the same run: each library's redeliver/plain ratio, then the two
         * libraries' redeliver paths against each other. */
        lib old = load(argv[2]);
        if (old.create_ex) {
            same_process(&old, &old, "8 B put+get(+ack), OLD lib: A plain, B redel", 8, 64,
                         20000, 0, 1);
            same_process(&nw, &nw, "8 B put+get(+ack), NEW lib: A plain, B redel", 8, 64,
                         20000, 0, 1);
            same_process(&old, &nw, "8 B put+get+ack redeliver: A old, B new", 8, 64, 20000, 1,
                         1);
            same_process(&old, &old, "1 MiB put+get(+ack), OLD lib: A plain, B redel",
                         1 << 20, 8, 40, 0, 1);
            same_process(&nw, &nw, "1 MiB put+get(+ack), NEW lib: A plain, B redel", 1 << 20,
                         8, 40, 0, 1);
            fflush(stdout);
        }
    } else {
        same_process(&nw, &nw, "8 B put+get(+ack): A plain, B redeliver", 8, 64, 20000, 0, 1);
        same_process(&nw, &nw, "1 MiB put+get(+ack): A plain, B redeliver", 1 << 20, 8, 40, 0,
                     1);
    }
    if (getenv("LEASE_COST_NO_FAN")) return 0;
    uint64_t sizes[2] = {8, 1 << 20}, caps[2] = {256, 8}; int ns[2] = {200000, 2000};
    for (int z = 0; z < 2; z++) {
        double p[5], r[5];
        for (int i = 0; i < 5; i++) {
            p[i] = fan(&nw, 0, ns[z], sizes[z], caps[z]);
            r[i] = fan(&nw, 1, ns[z], sizes[z], caps[z]);
        }
        double mp = median(p, 5), mr = median(r, 5);
        printf("1 -> 4 processes, %7llu B: A plain, B redeliver %10.4f M/s %10.4f M/s   ratio %.3f\n",
               (unsigned long long)sizes[z], mp / 1e6, mr / 1e6, mr / mp);
        fflush(stdout);
    }
    return 0;
}
