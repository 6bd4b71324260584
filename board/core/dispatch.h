#ifndef BOARD_DISPATCH_H
#define BOARD_DISPATCH_H

#include "agent_ops.h"

/* How an opcode is served: its handler and the payload sizes it takes (max_length
 * ANY_LENGTH: up to P, the handler checks its own §3.1 limit). */
#define ANY_LENGTH 0xFFFFFFFFu

struct op_entry {
    uint8_t opcode;
    op_handler handler;
    uint32_t min_length, max_length;
};

/* The entry for a request opcode, or NULL (UNKNOWN_OPCODE). */
const struct op_entry *dispatch_find(uint8_t opcode);

#endif
