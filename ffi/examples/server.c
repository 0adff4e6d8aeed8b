/*
 * server.c: an M3-IPC server in C. Binds slot NR of the DC named DC and answers every PING
 * (see pingpong.h) until a STOP.
 *
 *     server DC NR [CPU]
 *
 *   DC   the DC's name (made with `dvs dc create DC`)
 *   NR   the slot to bind, a user slot: 0 .. procs-1 of the DC (221 by default), e.g. 0
 *   CPU  pin the process to this CPU (omitted or negative: leave it to the scheduler)
 *
 * Prints "READY <endpoint>" once bound and "DONE <requests>" at the end.
 */
#define _GNU_SOURCE /* sched_setaffinity, before any system header */
#include <string.h>
#include "pingpong.h"

int main(int argc, char **argv) {
    int32_t dc, me, ep, rcode;
    long served = 0;
    message m, reply;

    if (argc < 3) {
        fprintf(stderr,
                "usage: %s DC NR [CPU]\n"
                "  DC   the DC's name (dvs dc create DC)\n"
                "  NR   the slot to bind (0 .. procs-1), e.g. 0\n"
                "  CPU  pin to this CPU (negative or omitted: do not pin)\n",
                argv[0]);
        return 2;
    }
    pin(argc > 3 ? atoi(argv[3]) : -1);
    dc = m3_dc_open(argv[1]);
    if (dc < 0) die("m3_dc_open", dc);
    me = m3_bind(dc, atoi(argv[2]), "c-server", &ep);
    if (me < 0) die("m3_bind", me);
    printf("READY %d\n", ep);
    fflush(stdout);

    for (;;) {
        memset(&m, 0, sizeof m);
        rcode = m3_receive(me, M3_ANY, &m, 30000);
        if (rcode < 0) die("m3_receive", rcode);
        memset(&reply, 0, sizeof reply);
        reply.m_type = 0;
        reply.m_u.m_m1.m1i1 = m.m_u.m_m1.m1i1 + 1;
        rcode = m3_reply(me, m.m_source, &reply);
        if (rcode < 0) die("m3_reply", rcode);
        served++;
        if (m.m_type == STOP) break;
    }
    rcode = m3_unbind(me);
    if (rcode < 0) die("m3_unbind", rcode);
    m3_dc_close(dc);
    printf("DONE %ld\n", served);
    return 0;
}
