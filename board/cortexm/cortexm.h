/* The few Cortex-M4 system registers the board platforms use (ARMv7-M ARM, B3). */
#ifndef CORTEXM_H
#define CORTEXM_H

#include <stdint.h>

#define REG32(address) (*(volatile uint32_t *)(uintptr_t)(address))

#define SCB_VTOR REG32(0xE000ED08u)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define AIRCR_SYSRESETREQ (0x05FA0000u | (1u << 2))

#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SYST_ENABLE_TICKINT_CPUCLK 0x7u
#define SYST_COUNTFLAG (1u << 16)

static inline void nvic_enable(unsigned irq)
{
    REG32(0xE000E100u + 4u * (irq / 32u)) = 1u << (irq % 32u);
}

static inline void irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }

/* Sleeps until an interrupt is pending; call with interrupts disabled (PRIMASK set) after
 * checking there is no work, so that an interrupt in between still wakes it. */
static inline void wait_for_interrupt(void) { __asm__ volatile("wfi" ::: "memory"); }

/* Resets the whole core (SYSRESETREQ); never returns. */
_Noreturn void cortexm_system_reset(void);

#endif
