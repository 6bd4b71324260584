/* OTP_* (§6.5): fuses only ever gain bits. */
#include "agent_ops.h"
#include "platform.h"
#include "wire.h"

enum error_code op_otp_word_count(struct agent *a, const struct request *rq, struct reply *rp)
{
    (void)rq;
    put_u32(rp->payload, a->config->otp_words);
    rp->length = 4;
    return ERR_NONE;
}

enum error_code op_otp_read(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t index = get_u32(rq->payload), value;
    if (index >= a->config->otp_words) return refuse(rp, ERR_OUT_OF_RANGE, "no such word");
    if (!plat_otp_read(index, &value)) return refuse(rp, ERR_INTERNAL, "fuse read");
    put_u32(rp->payload, value);
    rp->length = 4;
    return ERR_NONE;
}

enum error_code op_otp_blow(struct agent *a, const struct request *rq, struct reply *rp)
{
    uint32_t index = get_u32(rq->payload), bits = get_u32(rq->payload + 4), old;
    if (index >= a->config->otp_words) return refuse(rp, ERR_OUT_OF_RANGE, "no such word");
    if (!plat_otp_read(index, &old)) return refuse(rp, ERR_INTERNAL, "fuse read");
    if ((old | bits) != old && !plat_otp_write(index, old | bits)) {
        return refuse(rp, ERR_INTERNAL, "fuse write");
    }
    return ERR_NONE;
}
