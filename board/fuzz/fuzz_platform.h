#ifndef FUZZ_PLATFORM_H
#define FUZZ_PLATFORM_H

#include <stdint.h>

#include "../core/slip.h"

#define FUZZ_FLASH_SIZE (32u * 1024u)
#define FUZZ_SECTOR_SIZE 4096u
#define FUZZ_PAGE_SIZE 256u
#define FUZZ_OTP_WORDS 8u

extern uint8_t fuzz_flash[FUZZ_FLASH_SIZE];
extern uint32_t fuzz_otp[FUZZ_OTP_WORDS];

/* Erased flash, blank fuses, and a checker for frames sent with this max_payload. */
void fuzz_platform_reset(uint32_t max_payload);

#endif
