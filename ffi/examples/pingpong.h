/*
 * pingpong.h: what the example server and clients agree on, and the little they share.
 *
 * A client sendrec()s requests of type PING carrying a sequence number in m1_i1; the server
 * replies with type 0 and the number plus one. A request of type STOP is answered and ends the
 * server.
 */
#ifndef PINGPONG_H
#define PINGPONG_H

#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first #include (pingpong.h pins with sched_setaffinity)"
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include "m3ipc.h"

#define PING 1
#define STOP 2

/* Exit with a message naming the failed call and its error. */
static inline void die(const char *what, int32_t rcode) {
    fprintf(stderr, "%s: %s\n", what, m3_strerror(rcode));
    exit(1);
}

/* Pin the calling process to CPU `cpu` (a negative value: leave it where it is). */
static inline void pin(int cpu) {
    cpu_set_t set;
    if (cpu < 0) {
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("sched_setaffinity");
        exit(1);
    }
}

#endif
