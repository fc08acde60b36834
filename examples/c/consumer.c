/*
 * consumer.c — gets COUNT messages from the fastqueue queue NAME and checks every byte.
 *
 *     usage: consumer NAME COUNT                      attach to an existing queue
 *            consumer NAME COUNT MAX_MSG CAPACITY     create the queue (mode 0600), remove it at the end
 *
 * Message i must be the pattern of pattern.h. Each get waits at most 10 s, so a vanished producer
 * ends it with an error instead of a hang. Exit status 0 when all COUNT messages arrived intact
 * and in order, 1 otherwise (with a message on stderr).
 *
 * Build (after `just build`):
 *     cc -std=c99 -Wall -Wextra -Werror -I core/include examples/c/consumer.c \
 *        -L target/release -lfastqueue -Wl,-rpath,"$PWD/target/release" -o consumer
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

/* Gets and checks the messages; returns 0 if all were right. */
static int consume(fq_queue *q, uint64_t count) {
    uint64_t max_msg = fq_max_msg(q);
    uint8_t *buf = malloc(max_msg);
    uint64_t i;
    int failed = 0;

    if (buf == NULL) {
        fprintf(stderr, "consumer: out of memory\n");
        return 1;
    }
    for (i = 0; i < count && !failed; i++) {
        uint64_t len = 0, bad;
        int32_t st = fq_get(q, buf, max_msg, &len, WAIT_NS);
        if (st != FQ_OK) {
            fprintf(stderr, "consumer: get of message %llu failed: %s\n", (unsigned long long)i,
                    fq_status_str(st));
            failed = 1;
        } else if ((bad = fqx_check(buf, len, i, max_msg)) != len) {
            if (bad == UINT64_MAX) {
                fprintf(stderr, "consumer: message %llu has %llu bytes, expected %llu\n",
                        (unsigned long long)i, (unsigned long long)len,
                        (unsigned long long)fqx_len(i, max_msg));
            } else {
                fprintf(stderr, "consumer: message %llu is wrong at byte %llu\n",
                        (unsigned long long)i, (unsigned long long)bad);
            }
            failed = 1;
        }
    }
    free(buf);
    return failed;
}

int main(int argc, char **argv) {
    fq_queue *q = NULL;
    const char *name;
    uint64_t count;
    int created = argc == 5;
    int failed;
    int32_t st;

    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s NAME COUNT [MAX_MSG CAPACITY]\n", argv[0]);
        return 2;
    }
    name = argv[1];
    count = strtoull(argv[2], NULL, 10);
    if (fq_abi_version() != FQ_ABI_VERSION) {
        fprintf(stderr, "consumer: library ABI %u, header ABI %u\n", (unsigned)fq_abi_version(),
                (unsigned)FQ_ABI_VERSION);
        return 1;
    }
    if (created) {
        st = fq_create(name, strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), 0600, &q);
    } else {
        st = open_when_there(name, &q);
    }
    if (st != FQ_OK) {
        fprintf(stderr, "consumer: cannot %s queue %s: %s\n", created ? "create" : "open", name,
                fq_status_str(st));
        return 1;
    }
    failed = consume(q, count);
    fq_close(q);
    if (created) {
        st = fq_unlink(name);
        if (st != FQ_OK) {
            fprintf(stderr, "consumer: cannot remove queue %s: %s\n", name, fq_status_str(st));
            failed = 1;
        }
    }
    if (failed) {
        return 1;
    }
    printf("consumer: received %llu messages, all correct\n", (unsigned long long)count);
    return 0;
}
