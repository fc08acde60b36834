/*
 * producer.c — puts COUNT messages into the fastqueue queue NAME, then exits.
 *
 *     usage: producer NAME COUNT
 *
 * Attaches to an existing queue (waiting up to 10 s for it to appear, so it may be started before
 * the consumer that creates it). Message i is the pattern of pattern.h, 0..max_msg bytes long.
 * Each put waits at most 10 s for a free slot, so a vanished consumer ends it with an error
 * instead of a hang. Exit status 0 on success, 1 on any failure (with a message on stderr).
 *
 * Build (after `just build`):
 *     cc -std=c99 -Wall -Wextra -Werror -I core/include examples/c/producer.c \
 *        -L target/release -lfastqueue -Wl,-rpath,"$PWD/target/release" -o producer
 */
#define _POSIX_C_SOURCE 199309L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastqueue.h"
#include "pattern.h"

#define WAIT_NS INT64_C(10000000000) /* 10 s */

/* fq_open, retried every 10 ms for up to 10 s while the queue does not exist yet. */
static int32_t open_when_there(const char *name, fq_queue **out) {
    const struct timespec pause = {0, 10 * 1000 * 1000};
    int attempt;
    int32_t st = FQ_ERR_NOT_FOUND;
    for (attempt = 0; attempt < 1000; attempt++) {
        st = fq_open(name, out);
        if (st != FQ_ERR_NOT_FOUND && st != FQ_ERR_NOT_READY) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    return st;
}

int main(int argc, char **argv) {
    fq_queue *q = NULL;
    uint8_t *buf;
    uint64_t count, max_msg, i;
    int32_t st;

    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME COUNT\n", argv[0]);
        return 2;
    }
    count = strtoull(argv[2], NULL, 10);
    if (fq_abi_version() != FQ_ABI_VERSION) {
        fprintf(stderr, "producer: library ABI %u, header ABI %u\n", (unsigned)fq_abi_version(),
                (unsigned)FQ_ABI_VERSION);
        return 1;
    }
    st = open_when_there(argv[1], &q);
    if (st != FQ_OK) {
        fprintf(stderr, "producer: cannot open queue %s: %s\n", argv[1], fq_status_str(st));
        return 1;
    }
    max_msg = fq_max_msg(q);
    buf = malloc(max_msg);
    if (buf == NULL) {
        fprintf(stderr, "producer: out of memory\n");
        fq_close(q);
        return 1;
    }
    for (i = 0; i < count; i++) {
        uint64_t len = fqx_fill(buf, i, max_msg);
        st = fq_put(q, buf, len, WAIT_NS);
        if (st != FQ_OK) {
            fprintf(stderr, "producer: put of message %llu failed: %s\n", (unsigned long long)i,
                    fq_status_str(st));
            break;
        }
    }
    free(buf);
    fq_close(q);
    if (st != FQ_OK) {
        return 1;
    }
    printf("producer: sent %llu messages\n", (unsigned long long)count);
    return 0;
}
