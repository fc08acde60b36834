/*
 * two_process_check.c — the library seen from C alone, in two processes: what `just test-musl`
 * runs against a musl build of the library (compiled with musl-gcc, or zig cc for aarch64),
 * where no Python can load it. Plain C99 and POSIX; any libc.
 *
 *   1. the parent creates a queue; a forked child opens it by name and puts COUNT messages of
 *      every length 0..MAX_MSG (examples/c/pattern.h); the parent gets and checks every byte;
 *   2. a forked child claims a slot for writing (fq_write_begin) and is SIGKILLed holding it:
 *      the parent's next get skips the dead writer's slot, and puts and gets go on;
 *   3. a forked child takes a message in place (fq_read_begin) and is SIGKILLed holding it:
 *      the slot is recovered (the message counted lost) and the ring goes round again.
 *
 * Usage: two_process_check NAME. Prints one line per step; exit status 0 when all passed. The
 * queue is unlinked at the end (and at the start, should a failed run have left it).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fastqueue.h"
#include "../../examples/c/pattern.h"

#define MAX_MSG 300
#define CAPACITY 3
#define COUNT 3000
#define SECOND INT64_C(1000000000)

static const char *name;

static void fail(const char *what, int32_t status) {
    fprintf(stderr, "two_process_check: %s: %d (%s)\n", what, (int)status, fq_status_str(status));
    fq_unlink(name);
    exit(1);
}

static fq_queue *open_queue(void) {
    fq_queue *q = NULL;
    int32_t s = fq_open(name, &q);
    if (s != FQ_OK) {
        fail("fq_open in the child", s);
    }
    return q;
}

static void producer(void) {
    uint8_t buf[MAX_MSG];
    fq_queue *q = open_queue();
    uint64_t i;
    for (i = 0; i < COUNT; i++) {
        uint64_t len = fqx_fill(buf, i, MAX_MSG);
        int32_t s = fq_put(q, buf, len, 30 * SECOND);
        if (s != FQ_OK) {
            fail("fq_put in the child", s);
        }
    }
    fq_close(q);
    exit(0);
}

/* Claims a slot (write or read), tells the parent through `fd`, then waits to be killed. */
static void holder(int fd, int reading) {
    fq_queue *q = open_queue();
    void *data = NULL;
    const void *cdata = NULL;
    uint64_t token = 0, len = 0;
    int32_t s = reading ? fq_read_begin(q, &cdata, &len, &token, 30 * SECOND)
                        : fq_write_begin(q, &data, &token, 30 * SECOND);
    if (s != FQ_OK) {
        fail(reading ? "fq_read_begin" : "fq_write_begin", s);
    }
    if (!reading) {
        memcpy(data, "dead", 4);
    }
    if (write(fd, "h", 1) != 1) {
        exit(2);
    }
    for (;;) {
        pause(); /* SIGKILLed here, holding the slot */
    }
}

static pid_t fork_or_die(void) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        fq_unlink(name);
        exit(1);
    }
    return pid;
}

static void kill_holder(int reading) {
    int fds[2];
    char c;
    pid_t pid;
    int status;
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    pid = fork_or_die();
    if (pid == 0) {
        close(fds[0]);
        holder(fds[1], reading);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1) {
        fprintf(stderr, "two_process_check: the holder died before claiming its slot\n");
        fq_unlink(name);
        exit(1);
    }
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "two_process_check: the holder was not killed\n");
        fq_unlink(name);
        exit(1);
    }
}

static void put_get(fq_queue *q, const char *msg) {
    uint8_t buf[MAX_MSG];
    uint64_t len = 0;
    int32_t s = fq_put(q, msg, strlen(msg), 30 * SECOND);
    if (s != FQ_OK) {
        fail("fq_put after a kill", s);
    }
    s = fq_get(q, buf, sizeof buf, &len, 30 * SECOND);
    if (s != FQ_OK) {
        fail("fq_get after a kill", s);
    }
    if (len != strlen(msg) || memcmp(buf, msg, len) != 0) {
        fprintf(stderr, "two_process_check: got another message than %s\n", msg);
        fq_unlink(name);
        exit(1);
    }
}

int main(int argc, char **argv) {
    fq_queue *q = NULL;
    uint8_t buf[MAX_MSG];
    uint64_t i, len, stats[FQ_STAT_COUNT];
    int32_t s;
    int status;
    pid_t pid;

    if (argc != 2) {
        fprintf(stderr, "usage: two_process_check NAME\n");
        return 2;
    }
    name = argv[1];
    if (fq_abi_version() != FQ_ABI_VERSION) {
        fprintf(stderr, "two_process_check: library ABI %u, header %u\n",
                (unsigned)fq_abi_version(), (unsigned)FQ_ABI_VERSION);
        return 1;
    }
    fq_unlink(name);
    s = fq_create(name, MAX_MSG, CAPACITY, 0600, &q);
    if (s != FQ_OK) {
        fail("fq_create", s);
    }

    /* 1. Across two processes, every length, every byte checked. */
    pid = fork_or_die();
    if (pid == 0) {
        producer();
    }
    for (i = 0; i < COUNT; i++) {
        s = fq_get(q, buf, sizeof buf, &len, 30 * SECOND);
        if (s != FQ_OK) {
            fail("fq_get", s);
        }
        if (fqx_check(buf, len, i, MAX_MSG) != len) {
            fprintf(stderr, "two_process_check: message %lu is wrong\n", (unsigned long)i);
            fq_unlink(name);
            return 1;
        }
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "two_process_check: the producer failed\n");
        fq_unlink(name);
        return 1;
    }
    printf("two_process_check: %d messages of every length 0..%d from a child process\n", COUNT,
           MAX_MSG);

    /* 2. A writer SIGKILLed holding its claimed slot: skipped, and the queue goes on. */
    kill_holder(0);
    for (i = 0; i < 2 * CAPACITY; i++) {
        put_get(q, "after the writer");
    }
    /* 3. A reader SIGKILLed holding a message: the slot is recovered, the message lost. */
    put_get(q, "warm-up");
    s = fq_put(q, "lost", 4, 30 * SECOND);
    if (s != FQ_OK) {
        fail("fq_put", s);
    }
    kill_holder(1);
    for (i = 0; i < 2 * CAPACITY; i++) {
        put_get(q, "after the reader");
    }
    s = fq_stats(q, stats, FQ_STAT_COUNT);
    if (s != FQ_OK) {
        fail("fq_stats", s);
    }
    if (stats[FQ_STAT_SKIPPED] != 1 || stats[FQ_STAT_LOST] != 1 || stats[FQ_STAT_RECOVERIES] < 2) {
        fprintf(stderr, "two_process_check: skipped %lu, lost %lu, recoveries %lu\n",
                (unsigned long)stats[FQ_STAT_SKIPPED], (unsigned long)stats[FQ_STAT_LOST],
                (unsigned long)stats[FQ_STAT_RECOVERIES]);
        fq_unlink(name);
        return 1;
    }
    printf("two_process_check: a writer and a reader SIGKILLed in their slots were recovered "
           "(%lu recoveries, 1 skipped, 1 lost)\n",
           (unsigned long)stats[FQ_STAT_RECOVERIES]);
    fq_close(q);
    s = fq_unlink(name);
    if (s != FQ_OK) {
        fail("fq_unlink", s);
    }
    printf("two_process_check: all passed\n");
    return 0;
}
