/*
 * client.c: an M3-IPC client in C. Binds slot NR of the DC named DC, waits for the server at
 * slot SERVER, makes COUNT timed sendrec round trips (each reply checked), and prints the
 * median round trip. With "stop" it then sends STOP, which ends the server.
 *
 *     client DC NR SERVER COUNT [CPU [stop]]
 *
 *   DC      the DC's name (made with `dvs dc create DC`)
 *   NR      the client's own slot (0 .. procs-1, not the server's), e.g. 100
 *   SERVER  the server's slot (the NR given to `server`), e.g. 0
 *   COUNT   how many round trips to make and time (at least 1)
 *   CPU     pin the process to this CPU (negative: do not pin; needed before `stop`)
 *   stop    send STOP after the round trips, which ends the server
 *
 * Prints "OK count=<COUNT> p50_ns=<median>". With M3_CLIENT_BLOCK=1 in the environment the
 * client sleeps on its doorbell at once instead of spinning first (for instruction counts
 * under callgrind, where spinning would count its loops).
 */
#define _GNU_SOURCE /* sched_setaffinity, before any system header */
#include <string.h>
#include <time.h>
#include "pingpong.h"

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(int argc, char **argv) {
    int32_t dc, me, ep, server, rcode;
    long count, i, *rtt;
    message m;

    if (argc < 5) {
        fprintf(stderr,
                "usage: %s DC NR SERVER COUNT [CPU [stop]]\n"
                "  DC      the DC's name (dvs dc create DC)\n"
                "  NR      this client's slot (0 .. procs-1), e.g. 100\n"
                "  SERVER  the server's slot, e.g. 0\n"
                "  COUNT   round trips to time\n"
                "  CPU     pin to this CPU (negative: do not pin)\n"
                "  stop    then send STOP, which ends the server\n",
                argv[0]);
        return 2;
    }
    pin(argc > 5 ? atoi(argv[5]) : -1);
    count = atol(argv[4]);
    if (count < 1) count = 1;
    rtt = malloc((size_t)count * sizeof *rtt);
    if (rtt == NULL) return 1;

    dc = m3_dc_open(argv[1]);
    if (dc < 0) die("m3_dc_open", dc);
    me = m3_bind(dc, atoi(argv[2]), "c-client", &ep);
    if (me < 0) die("m3_bind", me);
    if (getenv("M3_CLIENT_BLOCK") != NULL) {
        rcode = m3_set_wait_policy(me, M3_WAIT_BLOCK);
        if (rcode < 0) die("m3_set_wait_policy", rcode);
    }
    rcode = m3_wait4bind(me, atoi(argv[3]), 20000, &server);
    if (rcode < 0) die("m3_wait4bind", rcode);

    for (i = 0; i < count; i++) {
        long t0;
        memset(&m, 0, sizeof m);
        m.m_type = PING;
        m.m_u.m_m1.m1i1 = (int32_t)i;
        t0 = now_ns();
        rcode = m3_sendrec(me, server, &m, 20000);
        rtt[i] = now_ns() - t0;
        if (rcode < 0) die("m3_sendrec", rcode);
        if (m.m_type != 0 || m.m_source != server || m.m_u.m_m1.m1i1 != (int32_t)i + 1) {
            fprintf(stderr, "bad reply: type %d from %d, m1i1 %d for %ld\n", m.m_type, m.m_source,
                    m.m_u.m_m1.m1i1, i);
            return 1;
        }
    }
    if (argc > 6 && strcmp(argv[6], "stop") == 0) {
        memset(&m, 0, sizeof m);
        m.m_type = STOP;
        rcode = m3_sendrec(me, server, &m, 20000);
        if (rcode < 0) die("m3_sendrec(STOP)", rcode);
    }
    qsort(rtt, (size_t)count, sizeof *rtt, cmp_long);
    printf("OK count=%ld p50_ns=%ld\n", count, rtt[count / 2]);
    free(rtt);
    m3_unbind(me);
    m3_dc_close(dc);
    return 0;
}
