/* The native line's receive side: a thread reads the port into a ring while the agent works,
 * as a board's UART interrupt fills a ring while its main loop handles a frame, so the host
 * never waits for the agent's work to find room on the line (a pty holds only a few KiB).
 * One reader at a time; every other function is for the main thread. */
#ifndef NATIVE_RX_H
#define NATIVE_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts reading `fd` (non-blocking) until its end or an error; false (errno) if the thread
 * cannot start. */
bool rx_start(int fd);

/* The fd to sleep on: readable once bytes, or the end, arrive after rx_arm returned true. */
int rx_wakeup_fd(void);

/* True if nothing the agent would act on waits: the reader will then make rx_wakeup_fd
 * readable when something does (false: take what waits first, no wake-up is due). The agent
 * acts only at a SLIP END (§4), so bytes of a frame not yet ended wait in the ring until its
 * END arrives, or a quarter of the ring (256 KiB) has filled, or the line ends: the main
 * thread then wakes once per frame rather than once per read (a pty gives 4 KiB a read). */
bool rx_arm(void);

/* Bytes waiting, contiguous (at most `limit`), without taking them; 0 if none. */
size_t rx_peek(const uint8_t **bytes, size_t limit);

/* Done with `n` bytes from rx_peek (none if rx_drop was called since). */
void rx_consume(size_t n);

/* Forgets everything received so far (the reboot silence drops what arrives). */
void rx_drop(void);

/* True once the reader has stopped: *error is 0 at the end of the input, else its errno. */
bool rx_ended(int *error);

/* Waits for the reader to stop (after the caller shut its fd down, or it ended) and forgets
 * what it left; rx_start may then start another. */
void rx_join(void);

#endif
