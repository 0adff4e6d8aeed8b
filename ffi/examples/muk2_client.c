/*
 * muk2_client.c: a C program talking to the servers of a running MUK2 (`muk2 run --config
 * FILE`) through the fabric: echo (20) and PM (0), with the request codes of
 * muk/src/protocol.rs.
 *
 *     muk2_client DC NR
 *
 *   DC  the unikernel's DC: the `[dc] name` of its config (`muk2` in `muk2 default-config`)
 *   NR  a free user slot to bind, not a server's (servers: pm 0, fs 1, rdisk 3, ftp 14,
 *       echo 20), e.g. 100
 *
 * Binds user slot NR of the unikernel's DC, then: an ECHO_ECHO round trip (the payload comes
 * back unchanged), PM_REGISTER under a name, PM_GETEP of its own PID (its endpoint comes back),
 * PM_COUNT, PM_EXIT, and a request PM does not know (answered EDVSBADREQUEST). Prints "OK".
 */
#define _GNU_SOURCE /* sched_setaffinity, before any system header */
#include <string.h>
#include <unistd.h>
#include "pingpong.h"

/* Request codes (muk/src/protocol.rs); the test passes them with -D to keep them in step. */
#ifndef ECHO_ECHO
#define ECHO_ECHO 0x0301
#endif
#ifndef PM_REGISTER
#define PM_REGISTER 0x0201
#endif
#ifndef PM_EXIT
#define PM_EXIT 0x0202
#endif
#ifndef PM_GETEP
#define PM_GETEP 0x0204
#endif
#ifndef PM_COUNT
#define PM_COUNT 0x0205
#endif
#define ECHO_NR 20
#define PM_NR 0

static int32_t me;

/* sendrec `m` to `server`; the reply's m_type (0 or a negative EDVS code). */
static int32_t ask(int32_t server, message *m, const char *what) {
    int32_t rcode = m3_sendrec(me, server, m, 10000);
    if (rcode < 0) die(what, rcode);
    if (m->m_source != server) {
        fprintf(stderr, "%s: reply from %d, not %d\n", what, m->m_source, server);
        exit(1);
    }
    return m->m_type;
}

int main(int argc, char **argv) {
    int32_t dc, ep, echo, pm, rcode;
    message m;

    if (argc < 3) {
        fprintf(stderr,
                "usage: %s DC NR\n"
                "  DC  the unikernel's DC (its config's [dc] name, e.g. muk2)\n"
                "  NR  a free user slot, not a server's (pm 0, fs 1, rdisk 3, ftp 14, echo 20),"
                " e.g. 100\n",
                argv[0]);
        return 2;
    }
    dc = m3_dc_open(argv[1]);
    if (dc < 0) die("m3_dc_open", dc);
    me = m3_bind(dc, atoi(argv[2]), "c-muk2-client", &ep);
    if (me < 0) die("m3_bind", me);
    if ((rcode = m3_wait4bind(me, ECHO_NR, 10000, &echo)) < 0) die("wait for echo", rcode);
    if ((rcode = m3_wait4bind(me, PM_NR, 10000, &pm)) < 0) die("wait for PM", rcode);

    memset(&m, 0, sizeof m);
    m.m_type = ECHO_ECHO;
    m.m_u.m_m1.m1i1 = 42;
    m.m_u.m_m1.m1i3 = -7;
    m.m_u.m_m1.m1p2 = 0x1122334455667788ull;
    if (ask(echo, &m, "ECHO_ECHO") != 0 || m.m_u.m_m1.m1i1 != 42 || m.m_u.m_m1.m1i3 != -7 ||
        m.m_u.m_m1.m1p2 != 0x1122334455667788ull) {
        fprintf(stderr, "echo: payload changed or error %d\n", m.m_type);
        return 1;
    }

    memset(&m, 0, sizeof m);
    m.m_type = PM_REGISTER;
    m.m_u.m_m3.m3i1 = 0;
    strcpy((char *)m.m_u.m_m3.m3ca1, "c-client");
    if ((rcode = ask(pm, &m, "PM_REGISTER")) != 0) die("PM_REGISTER reply", rcode);

    memset(&m, 0, sizeof m);
    m.m_type = PM_GETEP;
    m.m_u.m_m1.m1i1 = (int32_t)getpid();
    if ((rcode = ask(pm, &m, "PM_GETEP")) != 0) die("PM_GETEP reply", rcode);
    if (m.m_u.m_m1.m1i1 != ep) {
        fprintf(stderr, "PM_GETEP: %d, expected %d\n", m.m_u.m_m1.m1i1, ep);
        return 1;
    }

    memset(&m, 0, sizeof m);
    m.m_type = PM_COUNT;
    if ((rcode = ask(pm, &m, "PM_COUNT")) != 0) die("PM_COUNT reply", rcode);
    if (m.m_u.m_m1.m1i1 < 1) {
        fprintf(stderr, "PM_COUNT: %d\n", m.m_u.m_m1.m1i1);
        return 1;
    }

    memset(&m, 0, sizeof m);
    m.m_type = PM_EXIT;
    if ((rcode = ask(pm, &m, "PM_EXIT")) != 0) die("PM_EXIT reply", rcode);

    memset(&m, 0, sizeof m);
    m.m_type = 0x7777;
    if ((rcode = ask(pm, &m, "unknown request")) != M3_EDVSBADREQUEST) {
        fprintf(stderr, "unknown request answered %d, not EDVSBADREQUEST\n", rcode);
        return 1;
    }

    m3_unbind(me);
    m3_dc_close(dc);
    printf("OK\n");
    return 0;
}
