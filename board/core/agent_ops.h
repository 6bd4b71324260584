/* Inside the agent: a request, its reply under construction, and the opcode handlers. */
#ifndef BOARD_AGENT_OPS_H
#define BOARD_AGENT_OPS_H

#include "agent.h"
#include "proto.h"

struct request {
    uint8_t opcode;
    uint16_t seq;
    const uint8_t *payload;   /* inside the frame buffer: the reply is written over it */
    uint32_t length;
};

/* NO_REBOOT in reply.reboot: the board keeps running after this reply. */
#define NO_REBOOT 0xFFu

struct reply {
    uint8_t *payload;         /* == request.payload: read the request before writing here */
    uint32_t capacity;        /* P - 3 */
    uint32_t length;
    uint8_t flags;            /* REBOOTED, if the board resets after this reply */
    uint8_t reboot;           /* the cause of that reset, or NO_REBOOT */
    const char *error_text;   /* for people, with an error code */
};

/* A handler checks its request in the order of §7 "Which error wins" (the payload size for
 * the opcode is checked before it is called), acts only if every check passed, and returns
 * ERR_NONE with the reply payload written, or an error code with reply.error_text set. */
typedef enum error_code (*op_handler)(struct agent *a, const struct request *rq,
                                      struct reply *rp);

enum error_code op_hello(struct agent *, const struct request *, struct reply *);
enum error_code op_ping(struct agent *, const struct request *, struct reply *);
enum error_code op_query(struct agent *, const struct request *, struct reply *);
enum error_code op_stats(struct agent *, const struct request *, struct reply *);
enum error_code op_flash_geometry(struct agent *, const struct request *, struct reply *);
enum error_code op_flash_read(struct agent *, const struct request *, struct reply *);
enum error_code op_flash_program(struct agent *, const struct request *, struct reply *);
enum error_code op_flash_erase(struct agent *, const struct request *, struct reply *);
enum error_code op_flash_hash(struct agent *, const struct request *, struct reply *);
enum error_code op_otp_word_count(struct agent *, const struct request *, struct reply *);
enum error_code op_otp_read(struct agent *, const struct request *, struct reply *);
enum error_code op_otp_blow(struct agent *, const struct request *, struct reply *);
enum error_code op_reset_request(struct agent *, const struct request *, struct reply *);
enum error_code op_reset_last_cause(struct agent *, const struct request *, struct reply *);
enum error_code op_clock_wall(struct agent *, const struct request *, struct reply *);
enum error_code op_clock_monotonic(struct agent *, const struct request *, struct reply *);
enum error_code op_clock_sleep(struct agent *, const struct request *, struct reply *);
enum error_code op_console_log(struct agent *, const struct request *, struct reply *);
enum error_code op_console_lines(struct agent *, const struct request *, struct reply *);
enum error_code op_watchdog_start(struct agent *, const struct request *, struct reply *);
enum error_code op_watchdog_kick(struct agent *, const struct request *, struct reply *);
enum error_code op_watchdog_stop(struct agent *, const struct request *, struct reply *);

/* Sets the error text and returns `code`: `return refuse(rp, ERR_X, "why");`. */
static inline enum error_code refuse(struct reply *rp, enum error_code code, const char *text)
{
    rp->error_text = text;
    return code;
}

/* A range check without overflow: offset + length <= size. */
static inline bool range_fits(uint32_t offset, uint32_t length, uint32_t size)
{
    return offset <= size && length <= size - offset;
}

/* Logs `text` as console lines, one per '\n'-separated part (§6.3). */
void agent_log(struct agent *a, const uint8_t *text, uint32_t length);

#endif
