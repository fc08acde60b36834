/*
 * pattern.h — the messages the C examples exchange, so that a receiver can check every byte.
 *
 * Message i has length fqx_len(i, max_msg), between 0 and max_msg (message 0 is empty, every
 * 16th message from 1 on is exactly max_msg long), and byte j of it is (7*i + j) mod 256.
 * tests/test_c_interop.py computes the same messages in Python: change both or neither.
 */
#ifndef FASTQUEUE_EXAMPLES_PATTERN_H
#define FASTQUEUE_EXAMPLES_PATTERN_H

#include <stdint.h>

/* Length of message i for a queue whose largest message is max_msg bytes. */
static inline uint64_t fqx_len(uint64_t i, uint64_t max_msg) {
    if (i % 16 == 1) {
        return max_msg;
    }
    return (i * UINT64_C(2654435761)) % (max_msg + 1);
}

/* Fills buf with message i (fqx_len(i, max_msg) bytes); returns its length. */
static inline uint64_t fqx_fill(uint8_t *buf, uint64_t i, uint64_t max_msg) {
    uint64_t len = fqx_len(i, max_msg);
    uint64_t j;
    for (j = 0; j < len; j++) {
        buf[j] = (uint8_t)(i * 7 + j);
    }
    return len;
}

/* Returns the index of the first wrong byte of message i in buf[0..len), len if all are right,
 * or UINT64_MAX if the length itself is wrong. */
static inline uint64_t fqx_check(const uint8_t *buf, uint64_t len, uint64_t i, uint64_t max_msg) {
    uint64_t j;
    if (len != fqx_len(i, max_msg)) {
        return UINT64_MAX;
    }
    for (j = 0; j < len; j++) {
        if (buf[j] != (uint8_t)(i * 7 + j)) {
            return j;
        }
    }
    return len;
}

#endif /* FASTQUEUE_EXAMPLES_PATTERN_H */
