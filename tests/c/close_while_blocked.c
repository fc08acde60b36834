/* fq_close() while other threads are blocked in calls on the same handle: every blocked call
 * returns FQ_ERR_CLOSED, the close completes, nothing crashes. Also: fq_put_many() writes *done
 * on every return, FQ_ERR_TOO_BIG included.
 *
 * usage: close_while_blocked NAME_EMPTY NAME_FULL   (both names free; the test unlinks them)
 * Prints one line per blocked call ("<call> <status>") and "ok" at the end; exits 1 on failure. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fastqueue.h"

enum { MAX_MSG = 64 };

struct call {
    const char *what;
    fq_queue *q;
    int32_t status;
    volatile int started;
};

static void *run(void *arg) {
    struct call *c = arg;
    unsigned char buf[MAX_MSG * 4];
    uint64_t len = 0, lens[4] = {8, 8, 8, 8}, n = 0, token = 0;
    void *wdata = NULL;
    const void *rdata = NULL;
    memset(buf, 1, sizeof buf);
    c->started = 1;
    if (strcmp(c->what, "fq_get") == 0) {
        c->status = fq_get(c->q, buf, sizeof buf, &len, -1);
    } else if (strcmp(c->what, "fq_get_many") == 0) {
        c->status = fq_get_many(c->q, buf, sizeof buf, lens, 4, &n, -1);
    } else if (strcmp(c->what, "fq_get_many_exact") == 0) {
        c->status = fq_get_many_exact(c->q, buf, 8, 4, &n, -1);
    } else if (strcmp(c->what, "fq_read_begin") == 0) {
        c->status = fq_read_begin(c->q, &rdata, &len, &token, -1);
    } else if (strcmp(c->what, "fq_wait_readable") == 0) {
        c->status = fq_wait(c->q, FQ_WAIT_READABLE, -1);
    } else if (strcmp(c->what, "fq_put") == 0) {
        c->status = fq_put(c->q, buf, 8, -1);
    } else if (strcmp(c->what, "fq_put_many") == 0) {
        c->status = fq_put_many(c->q, buf, lens, 4, -1, &n);
    } else if (strcmp(c->what, "fq_write_begin") == 0) {
        c->status = fq_write_begin(c->q, &wdata, &token, -1);
    } else if (strcmp(c->what, "fq_wait_writable") == 0) {
        c->status = fq_wait(c->q, FQ_WAIT_WRITABLE, -1);
    } else if (strcmp(c->what, "fq_join") == 0) {
        c->status = fq_join(c->q, -1);
    }
    return NULL;
}

static void pause_ms(long ms) {
    struct timespec t;
    t.tv_sec = ms / 1000;
    t.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    static const char *on_empty[] = {"fq_get", "fq_get_many", "fq_get_many_exact",
                                     "fq_read_begin", "fq_wait_readable"};
    static const char *on_full[] = {"fq_put", "fq_put_many", "fq_write_begin",
                                    "fq_wait_writable", "fq_join"};
    struct call calls[10];
    pthread_t threads[10];
    fq_queue *empty = NULL, *full = NULL;
    uint64_t lens[2] = {8, MAX_MSG + 1}, done = 777;
    unsigned char data[2 * MAX_MSG];
    int i, failed = 0, rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME_EMPTY NAME_FULL\n", argv[0]);
        return 2;
    }
    if (fq_create(argv[1], MAX_MSG, 4, 0600, &empty) != FQ_OK ||
        fq_create(argv[2], MAX_MSG, 1, 0600, &full) != FQ_OK) {
        fprintf(stderr, "cannot create the queues\n");
        return 2;
    }
    memset(data, 7, sizeof data);
    /* *done is written on FQ_ERR_TOO_BIG (the second message is too long: nothing is put). */
    rc = fq_put_many(full, data, lens, 2, 0, &done);
    printf("fq_put_many too big: %d done=%llu\n", (int)rc, (unsigned long long)done);
    if (rc != FQ_ERR_TOO_BIG || done != 0) failed = 1;
    if (fq_put(full, data, 8, 0) != FQ_OK) {
        fprintf(stderr, "cannot fill the queue\n");
        return 2;
    }
    for (i = 0; i < 10; i++) {
        calls[i].what = i < 5 ? on_empty[i] : on_full[i - 5];
        calls[i].q = i < 5 ? empty : full;
        calls[i].status = 12345;
        calls[i].started = 0;
        if (pthread_create(&threads[i], NULL, run, &calls[i]) != 0) return 2;
    }
    for (i = 0; i < 10; i++) {
        while (!calls[i].started) pause_ms(1);
    }
    pause_ms(300); /* every call is inside the library, waiting */
    fq_close(empty);
    fq_close(full);
    for (i = 0; i < 10; i++) {
        pthread_join(threads[i], NULL);
        printf("%s %d\n", calls[i].what, (int)calls[i].status);
        if (calls[i].status != FQ_ERR_CLOSED) failed = 1;
    }
    puts(failed ? "FAILED" : "ok");
    return failed;
}
