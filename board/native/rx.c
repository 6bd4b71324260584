#define _GNU_SOURCE
#include "rx.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "../core/proto.h"

#define RING_SIZE (1u << 20)   /* a power of two: 16 maximal frames */
#define WAKE_BYTES (RING_SIZE / 4u)   /* wakes the main thread without an END (see rx.h) */

static uint8_t ring[RING_SIZE];
static size_t head, tail;      /* bytes ever received / taken; guarded by lock */
static size_t frame_end;       /* head just past the last END received; guarded by lock */
static bool dropped;           /* rx_drop since the last rx_peek */
static bool ended, running, stopping;
static bool waiting;           /* the main thread sleeps until the wake-up fd is readable */
static int end_error;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t room = PTHREAD_COND_INITIALIZER;
static pthread_t reader;
static int wakeup[2] = {-1, -1};

/* Nothing the agent would act on waits (lock held): no END since what was taken, and less
 * than WAKE_BYTES (the agent acts only at an END, §4 of the protocol). */
static bool idle(void)
{
    return frame_end <= tail && head - tail < WAKE_BYTES && !ended;
}

static void wake(void)
{
    if (write(wakeup[1], "", 1) < 0) { /* full: a wake-up is pending anyway */ }
}

static void finish(int error)
{
    pthread_mutex_lock(&lock);
    ended = true;
    end_error = error;
    waiting = false;
    pthread_mutex_unlock(&lock);
    wake();
}

static void *read_line(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (head - tail == RING_SIZE && !stopping) pthread_cond_wait(&room, &lock);
        if (stopping) {   /* rx_join: the ring was full, the line is being closed */
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        size_t at = head % RING_SIZE, span = RING_SIZE - (head - tail);
        pthread_mutex_unlock(&lock);
        if (span > RING_SIZE - at) span = RING_SIZE - at;
        /* Read first and sleep in poll only when nothing is there: while bytes stream in,
         * that is one system call per read instead of two. */
        ssize_t got = read(fd, ring + at, span);   /* only this thread writes past head */
        if (got < 0 && errno == EAGAIN) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                finish(errno);
                return NULL;
            }
            continue;
        }
        if (got > 0) {
            const uint8_t *end = memrchr(ring + at, SLIP_END, (size_t)got);
            pthread_mutex_lock(&lock);
            if (end != NULL) frame_end = head + (size_t)(end - (ring + at)) + 1u;
            head += (size_t)got;
            /* A busy main thread finds the bytes without a wake-up; a sleeping one is woken
             * once they can finish a frame. */
            bool due = waiting && !idle();
            if (due) waiting = false;
            pthread_mutex_unlock(&lock);
            if (due) wake();
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            finish(got == 0 ? 0 : errno);
            return NULL;
        }
    }
}

bool rx_start(int fd)
{
    if (wakeup[0] < 0 && pipe2(wakeup, O_CLOEXEC | O_NONBLOCK) != 0) return false;
    ended = stopping = false;
    end_error = 0;
    int error = pthread_create(&reader, NULL, read_line, (void *)(intptr_t)fd);
    if (error != 0) {
        errno = error;
        return false;
    }
    running = true;
    return true;
}

int rx_wakeup_fd(void) { return wakeup[0]; }

bool rx_arm(void)
{
    pthread_mutex_lock(&lock);
    bool nothing = idle();
    if (nothing) waiting = true;
    pthread_mutex_unlock(&lock);
    return nothing;
}

size_t rx_peek(const uint8_t **bytes, size_t limit)
{
    char scrap[64];
    while (read(wakeup[0], scrap, sizeof scrap) > 0) {}
    pthread_mutex_lock(&lock);
    size_t count = head - tail, at = tail % RING_SIZE;
    dropped = false;
    pthread_mutex_unlock(&lock);
    if (count > RING_SIZE - at) count = RING_SIZE - at;
    if (count > limit) count = limit;
    *bytes = ring + at;
    return count;
}

void rx_consume(size_t n)
{
    pthread_mutex_lock(&lock);
    if (!dropped) tail += n;
    pthread_cond_signal(&room);
    pthread_mutex_unlock(&lock);
}

void rx_drop(void)
{
    pthread_mutex_lock(&lock);
    tail = head;
    dropped = true;
    pthread_cond_signal(&room);
    pthread_mutex_unlock(&lock);
}

bool rx_ended(int *error)
{
    pthread_mutex_lock(&lock);
    bool done = ended && head == tail;
    *error = end_error;
    pthread_mutex_unlock(&lock);
    return done;
}

void rx_join(void)
{
    if (!running) return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&room);
    pthread_mutex_unlock(&lock);
    pthread_join(reader, NULL);
    running = false;
    rx_drop();
}
