/*
 * errors.c: every m3_ function given NULL, misaligned, out-of-range and stale arguments
 * returns its documented error, and never crashes.
 *
 *     errors DCNAME DCID
 *
 * Creates the DC DCNAME with id DCID in the region directory ($M3IPC_SHM_DIR), removes it at the
 * end. Prints each failed check and exits 1 if there was any; prints "OK <checks>" otherwise.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "m3ipc.h"

static int checks, failures;

#define EXPECT(call, want) expect_((call), (want), #call, __LINE__)

static void expect_(int32_t got, int32_t want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        fprintf(stderr, "line %d: %s\n    returned %d (%s), expected %d (%s)\n", line, what, got,
                m3_strerror(got), want, m3_strerror(want));
    }
}

/* A positive handle, or a failure. */
#define HANDLE(call) handle_((call), #call, __LINE__)

static int32_t handle_(int32_t got, const char *what, int line) {
    checks++;
    if (got <= 0) {
        failures++;
        fprintf(stderr, "line %d: %s\n    returned %d (%s), expected a handle\n", line, what, got,
                m3_strerror(got));
    }
    return got;
}

/* A blocked receive on another thread, to show EDVSBUSY and EDVSWOKENUP. */
struct blocked {
    int32_t proc;
    int32_t rcode;
};

static void *receive_blocked(void *arg) {
    struct blocked *b = (struct blocked *)arg;
    message m;
    memset(&m, 0, sizeof m);
    b->rcode = m3_receive(b->proc, M3_ANY, &m, 5000);
    return NULL;
}

/* A thread's own binding (dvk_tbind) shadows the process's while it lasts. */
struct thread_binding {
    uint32_t dcid;
    int32_t process_ep;
    int bad;
};

static void *bind_in_thread(void *arg) {
    struct thread_binding *t = (struct thread_binding *)arg;
    int32_t ep = 0, cur = 0;
    t->bad |= m3_endpoint(M3_CURRENT, &cur) != 0 || cur != t->process_ep;
    t->bad |= m3_bind_current(t->dcid, 8, M3_BIND_THREAD, &ep) != 0 || ep != 8;
    t->bad |= m3_bind_current(t->dcid, 9, M3_BIND_THREAD, &ep) != M3_EDVSBUSY;
    t->bad |= m3_endpoint(M3_CURRENT, &cur) != 0 || cur != 8;
    t->bad |= m3_unbind_current(t->dcid, 8) != 0;
    t->bad |= m3_endpoint(M3_CURRENT, &cur) != 0 || cur != t->process_ep;
    return NULL;
}

static void nap_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    /* Storage for misaligned pointers: 8-aligned, then offset by one byte. */
    static uint64_t raw[64];
    char *bytes = (char *)raw;
    message *bad_msg = (message *)(void *)(bytes + 1);
    int32_t *bad_i32 = (int32_t *)(void *)(bytes + 1);
    uint64_t *bad_u64 = (uint64_t *)(void *)(bytes + 4);
    char long_name[64], buf[8192];
    const char *dcname;
    uint32_t dcid, got_dcid;
    int32_t dc, dc2, srv, srv2, usr, srv_ep, srv2_ep, usr_ep, ep, stale_ep, cur_ep;
    uint64_t h, h2, g, g2;
    size_t size;
    message m;
    m3_dc_config cfg;
    m3_dc_info di;
    m3_proc_info pi;
    m3_priv pv;
    struct blocked blk;
    pthread_t thread;
    pid_t child;
    int status;

    if (argc != 3) {
        fprintf(stderr, "usage: %s DCNAME DCID\n", argv[0]);
        return 2;
    }
    dcname = argv[1];
    dcid = (uint32_t)atoi(argv[2]);
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    memset(&m, 0, sizeof m);
    memset(buf, 0, sizeof buf);

    /* ---- the library ---- */
    EXPECT((int32_t)m3_abi_version(), M3_ABI_VERSION);
    checks++;
    if (m3_strerror(-12345) == NULL || m3_strerror(1) == NULL ||
        strncmp(m3_strerror(M3_EDVSAGAIN), "EDVSAGAIN", 9) != 0) {
        failures++;
        fprintf(stderr, "m3_strerror\n");
    }
    EXPECT(m3_open(), 0);

    /* ---- DCs ---- */
    EXPECT(m3_dc_config_default(NULL), M3_EDVSFAULT);
    EXPECT(m3_dc_config_default((m3_dc_config *)(void *)(bytes + 1)), M3_EDVSFAULT);
    EXPECT(m3_dc_config_default(&cfg), 0);
    cfg.dcid = dcid;
    EXPECT(m3_dc_create(NULL, &cfg), M3_EDVSFAULT);
    EXPECT(m3_dc_create(long_name, &cfg), M3_EDVSNAMESIZE);
    EXPECT(m3_dc_create("a/b", &cfg), M3_EDVSNAMESIZE);
    EXPECT(m3_dc_create("\xff\xfe", &cfg), M3_EDVSINVAL);
    EXPECT(m3_dc_create(dcname, (const m3_dc_config *)(void *)(bytes + 1)), M3_EDVSFAULT);
    cfg.nr_tasks = 99;
    EXPECT(m3_dc_create(dcname, &cfg), M3_EDVSBADRANGE);
    cfg.nr_tasks = 34;
    cfg.dcid = 32;
    EXPECT(m3_dc_create(dcname, &cfg), M3_EDVSBADDCID);
    cfg.dcid = dcid;
    cfg.pool_bytes = 12345;
    EXPECT(m3_dc_create(dcname, &cfg), M3_EDVSALIGN);
    cfg.pool_bytes = 4u << 20;
    dc = HANDLE(m3_dc_create(dcname, &cfg));
    EXPECT(m3_dc_create(dcname, &cfg), M3_EDVSRSCBUSY);
    EXPECT(m3_dc_open(NULL), M3_EDVSFAULT);
    EXPECT(m3_dc_open(long_name), M3_EDVSNAMESIZE);
    EXPECT(m3_dc_open("no-such-dc"), M3_EDVSDCNOTRUN);
    EXPECT(m3_dc_open_id(32), M3_EDVSBADDCID);
    EXPECT(m3_dc_open_id(dcid == 31 ? 30 : dcid + 1), M3_EDVSDCNOTRUN);
    dc2 = HANDLE(m3_dc_open_id(dcid));
    EXPECT(m3_dc_close(dc2), 0);
    EXPECT(m3_dc_close(dc2), M3_EDVSBADF); /* stale */
    EXPECT(m3_getdcinfo(dc2, &di), M3_EDVSBADF);
    EXPECT(m3_dc_close(M3_CURRENT), M3_EDVSBADF);
    EXPECT(m3_dc_close(-1), M3_EDVSBADF);
    EXPECT(m3_dc_close(0x7fffffff), M3_EDVSBADF);
    EXPECT(m3_dc_remove(NULL), M3_EDVSFAULT);
    EXPECT(m3_dc_remove("no-such-dc"), M3_EDVSDCNOTRUN);
    EXPECT(m3_use_dc(77), M3_EDVSBADDCID);

    EXPECT(m3_getdcinfo(dc, NULL), M3_EDVSFAULT);
    EXPECT(m3_getdcinfo(dc, (m3_dc_info *)(void *)(bytes + 4)), M3_EDVSFAULT);
    EXPECT(m3_getdcinfo(M3_CURRENT, &di), M3_EDVSNOTBIND);
    EXPECT(m3_getdcinfo(dc, &di), 0);
    checks++;
    if (strcmp((const char *)di.name, dcname) != 0 || di.config.dcid != dcid || di.bound != 0) {
        failures++;
        fprintf(stderr, "m3_getdcinfo: name %s id %u bound %u\n", di.name, di.config.dcid,
                di.bound);
    }
    EXPECT(m3_getprocinfo(dc, 5000, &pi), M3_EDVSRANGE);
    EXPECT(m3_getprocinfo(dc, -35, &pi), M3_EDVSRANGE);
    EXPECT(m3_getprocinfo(dc, 0, NULL), M3_EDVSFAULT);
    EXPECT(m3_getprocinfo(dc, 0, &pi), 0);
    EXPECT((int32_t)pi.state, M3_SLOT_FREE);
    EXPECT(m3_getep(dc, (uint32_t)getpid(), NULL), M3_EDVSFAULT);
    EXPECT(m3_getep(dc, (uint32_t)getpid(), &ep), M3_EDVSNOTBIND);
    EXPECT(m3_dc_wait4bind(dc, 0, 0, NULL), M3_EDVSFAULT);
    EXPECT(m3_dc_wait4bind(dc, 0, 0, bad_i32), M3_EDVSFAULT);
    EXPECT(m3_dc_wait4bind(dc, 0, -5, &ep), M3_EDVSINVAL);
    EXPECT(m3_dc_wait4bind(dc, 0, M3_TIMEOUT_NOWAIT, &ep), M3_EDVSAGAIN);
    EXPECT(m3_dc_wait4bind(dc, 0, 20, &ep), M3_EDVSTIMEDOUT);
    EXPECT(m3_dc_wait4bind(dc, 5000, 0, &ep), M3_EDVSRANGE);
    EXPECT(m3_dc_wait4unbind(dc, M3_SELF, 0), M3_EDVSENDPOINT);
    EXPECT(m3_dc_wait4unbind(dc, 0, -2), M3_EDVSINVAL);

    /* ---- binding ---- */
    EXPECT(m3_bind(dc, 0, NULL, NULL), M3_EDVSFAULT);
    EXPECT(m3_bind(dc, 0, NULL, bad_i32), M3_EDVSFAULT);
    EXPECT(m3_bind(dc, 0, long_name, &ep), M3_EDVSNAMESIZE);
    EXPECT(m3_bind(dc, 5000, NULL, &ep), M3_EDVSRANGE);
    EXPECT(m3_bind(dc, -35, NULL, &ep), M3_EDVSRANGE);
    EXPECT(m3_bind(dc, M3_HARDWARE, NULL, &ep), M3_EDVSBADPROC);
    EXPECT(m3_bind(12345, 0, NULL, &ep), M3_EDVSBADF);
    EXPECT(m3_bind(M3_CURRENT, 0, NULL, &ep), M3_EDVSNOTBIND);
    srv = HANDLE(m3_bind(dc, 0, "srv", &srv_ep));
    srv2 = HANDLE(m3_bind(dc, 1, "srv2", &srv2_ep));
    usr = HANDLE(m3_bind(dc, 100, "usr", &usr_ep));
    EXPECT(m3_bind(dc, 0, NULL, &ep), M3_EDVSSLOTUSED);
    EXPECT(m3_endpoint(srv, NULL), M3_EDVSFAULT);
    EXPECT(m3_endpoint(srv, &ep), 0);
    EXPECT(ep, srv_ep);
    EXPECT(m3_getep(dc, (uint32_t)getpid(), &ep), 0);
    EXPECT(m3_set_wait_policy(srv, 9), M3_EDVSINVAL);
    EXPECT(m3_set_wait_policy(srv, M3_WAIT_BLOCK), 0);
    EXPECT(m3_set_wait_policy(srv, M3_WAIT_ADAPTIVE), 0);

    /* ---- messaging: pointers and timeouts ---- */
    EXPECT(m3_send(srv, srv2_ep, NULL, 0), M3_EDVSFAULT);
    EXPECT(m3_send(srv, srv2_ep, bad_msg, 0), M3_EDVSFAULT);
    EXPECT(m3_receive(srv, M3_ANY, NULL, 0), M3_EDVSFAULT);
    EXPECT(m3_receive(srv, M3_ANY, bad_msg, 0), M3_EDVSFAULT);
    EXPECT(m3_sendrec(usr, srv_ep, NULL, 0), M3_EDVSFAULT);
    EXPECT(m3_sendrec(usr, srv_ep, bad_msg, 0), M3_EDVSFAULT);
    EXPECT(m3_senda(srv, srv2_ep, NULL), M3_EDVSFAULT);
    EXPECT(m3_rcvrqst(srv, NULL, 0), M3_EDVSFAULT);
    EXPECT(m3_rcvrqst(srv, bad_msg, 0), M3_EDVSFAULT);
    EXPECT(m3_reply(srv, usr_ep, NULL), M3_EDVSFAULT);
    EXPECT(m3_reply(srv, usr_ep, bad_msg), M3_EDVSFAULT);
    EXPECT(m3_receive(srv, M3_ANY, &m, -7), M3_EDVSINVAL);
    EXPECT(m3_send(srv, srv2_ep, &m, -100), M3_EDVSINVAL);
    EXPECT(m3_receive(srv, M3_ANY, &m, M3_TIMEOUT_NOWAIT), M3_EDVSAGAIN);
    EXPECT(m3_receive(srv, M3_ANY, &m, 20), M3_EDVSTIMEDOUT);
    EXPECT(m3_rcvrqst(srv, &m, M3_TIMEOUT_NOWAIT), M3_EDVSAGAIN);
    EXPECT(m3_send(srv, srv2_ep, &m, M3_TIMEOUT_NOWAIT), M3_EDVSAGAIN);

    /* ---- messaging: endpoints ---- */
    stale_ep = srv2_ep + 35570; /* the next generation of slot 1 (GEN_SIZE) */
    EXPECT(m3_send(srv, 5000, &m, 0), M3_EDVSRANGE);
    EXPECT(m3_send(srv, srv_ep, &m, 0), M3_EDVSBADDEST);
    EXPECT(m3_send(srv, M3_HARDWARE, &m, 0), M3_EDVSBADDEST);
    EXPECT(m3_send(srv, M3_ANY, &m, 0), M3_EDVSENDPOINT);
    EXPECT(m3_send(srv, M3_NONE, &m, 0), M3_EDVSENDPOINT);
    EXPECT(m3_send(srv, stale_ep, &m, 0), M3_EDVSENDPOINT);
    EXPECT(m3_send(srv, 101, &m, 0), M3_EDVSDSTDIED);
    EXPECT(m3_receive(srv, 5000, &m, 0), M3_EDVSRANGE);
    EXPECT(m3_receive(srv, stale_ep, &m, 0), M3_EDVSENDPOINT);
    EXPECT(m3_receive(srv, 101, &m, 0), M3_EDVSSRCDIED);
    EXPECT(m3_sendrec(usr, 5000, &m, 0), M3_EDVSRANGE);
    EXPECT(m3_sendrec(usr, M3_ANY, &m, 0), M3_EDVSENDPOINT);
    EXPECT(m3_notify(srv, 5000), M3_EDVSRANGE);
    EXPECT(m3_notify(srv, stale_ep), M3_EDVSENDPOINT);
    EXPECT(m3_notify(srv, usr_ep), M3_EDVSTRAPDENIED);
    EXPECT(m3_reply(srv, usr_ep, &m), M3_EDVSPROCSTS);
    EXPECT(m3_reply(srv, 5000, &m), M3_EDVSRANGE);
    EXPECT(m3_senda(srv, 5000, &m), M3_EDVSRANGE);
    EXPECT(m3_wakeup(srv, 5000), M3_EDVSRANGE);
    EXPECT(m3_wakeup(srv, stale_ep), M3_EDVSENDPOINT);
    /* a user endpoint may only sendrec */
    EXPECT(m3_send(usr, srv_ep, &m, 0), M3_EDVSBADCALL);
    EXPECT(m3_receive(usr, M3_ANY, &m, 0), M3_EDVSBADCALL);
    EXPECT(m3_notify(usr, srv_ep), M3_EDVSBADCALL);
    EXPECT(m3_rcvrqst(usr, &m, 0), M3_EDVSBADCALL);
    EXPECT(m3_reply(usr, srv_ep, &m), M3_EDVSBADCALL);
    /* a message that does arrive */
    EXPECT(m3_notify(srv2, srv_ep), 0);
    EXPECT(m3_receive(srv, M3_ANY, &m, 0), 0);
    EXPECT(m.m_source, srv2_ep);
    EXPECT(m.m_type, M3_NOTIFY_MESSAGE | 1);

    /* ---- privileges and waits ---- */
    EXPECT(m3_getpriv(srv, M3_SELF, NULL), M3_EDVSFAULT);
    EXPECT(m3_getpriv(srv, M3_SELF, (m3_priv *)(void *)(bytes + 4)), M3_EDVSFAULT);
    EXPECT(m3_getpriv(srv, 5000, &pv), M3_EDVSRANGE);
    EXPECT(m3_getpriv(srv, M3_SELF, &pv), 0);
    EXPECT(m3_setpriv(srv, M3_SELF, NULL), M3_EDVSFAULT);
    EXPECT(m3_setpriv(srv, stale_ep, &pv), M3_EDVSENDPOINT);
    EXPECT(m3_setpriv(usr, M3_SELF, &pv), M3_EDVSBADCALL);
    EXPECT(m3_setpriv(srv, M3_SELF, &pv), 0);
    EXPECT(m3_wait4bind(srv, srv2_ep, 0, NULL), M3_EDVSFAULT);
    EXPECT(m3_wait4bind(srv, srv2_ep, -3, &ep), M3_EDVSINVAL);
    EXPECT(m3_wait4bind(srv, 5000, 0, &ep), M3_EDVSRANGE);
    EXPECT(m3_wait4bind(srv, srv2_ep, 0, &ep), 0);
    EXPECT(ep, srv2_ep);
    EXPECT(m3_wait4unbind(srv, srv2_ep, 0), M3_EDVSAGAIN);

    /* ---- buffers and grants ---- */
    EXPECT(m3_buffer_alloc(srv, 4096, NULL), M3_EDVSFAULT);
    EXPECT(m3_buffer_alloc(srv, 4096, bad_u64), M3_EDVSFAULT);
    EXPECT(m3_buffer_alloc(srv, 0, &h), M3_EDVSRANGE);
    EXPECT(m3_buffer_alloc(srv, (2u << 20), &h), M3_EDVSRANGE);
    EXPECT(m3_buffer_alloc(srv, SIZE_MAX, &h), M3_EDVSRANGE);
    EXPECT(m3_buffer_alloc(srv, 4096, &h), 0);
    EXPECT(m3_buffer_size(srv, h, NULL), M3_EDVSFAULT);
    EXPECT(m3_buffer_size(srv, h, &size), 0);
    EXPECT((int32_t)size, 4096);
    EXPECT(m3_buffer_write(srv, h, 0, NULL, 10), M3_EDVSFAULT);
    EXPECT(m3_buffer_write(srv, h, 0, (const void *)(UINTPTR_MAX - 3), 10), M3_EDVSFAULT);
    EXPECT(m3_buffer_write(srv, h, 0, buf, SIZE_MAX), M3_EDVSFAULT);
    EXPECT(m3_buffer_write(srv, h, 0, buf, 8192), M3_EDVSRANGE);
    EXPECT(m3_buffer_write(srv, h, 4090, buf, 10), M3_EDVSRANGE);
    EXPECT(m3_buffer_write(srv, h, SIZE_MAX, buf, 10), M3_EDVSRANGE);
    EXPECT(m3_buffer_write(srv, h, 0, NULL, 0), 0);
    memcpy(buf, "hello", 6);
    EXPECT(m3_buffer_write(srv, h, 100, buf, 6), 0);
    EXPECT(m3_buffer_read(srv, h, 0, NULL, 10), M3_EDVSFAULT);
    EXPECT(m3_buffer_read(srv, h, 4096, buf, 1), M3_EDVSRANGE);
    memset(buf, 0, 6);
    EXPECT(m3_buffer_read(srv, h, 100, buf, 6), 0);
    EXPECT(strcmp(buf, "hello"), 0);
    EXPECT(m3_buffer_read(srv, h ^ 1, 0, buf, 1), M3_EDVSBADF);   /* forged */
    EXPECT(m3_buffer_read(srv, 0, 0, buf, 1), M3_EDVSBADF);
    EXPECT(m3_buffer_read(srv2, h, 0, buf, 1), M3_EDVSBADOWNER);
    EXPECT(m3_buffer_give(srv, h, 5000), M3_EDVSRANGE);
    EXPECT(m3_buffer_give(srv, h, M3_ANY), M3_EDVSENDPOINT);
    EXPECT(m3_buffer_give(srv, h, stale_ep), M3_EDVSENDPOINT);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 100, 0, &g), M3_EDVSINVAL);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 100, 99, &g), M3_EDVSINVAL);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 100, 0x101, &g), M3_EDVSINVAL);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 8192, M3_GRANT_READ, &g), M3_EDVSRANGE);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 0, M3_GRANT_READ, &g), M3_EDVSRANGE);
    EXPECT(m3_grant(srv, h, usr_ep, 0, 100, M3_GRANT_READ, NULL), M3_EDVSFAULT);
    EXPECT(m3_grant(srv, h, M3_ANY, 0, 100, M3_GRANT_READ, &g), M3_EDVSENDPOINT);
    EXPECT(m3_grant(srv, h, usr_ep, 100, 6, M3_GRANT_READ, &g), 0);
    EXPECT(m3_grant(srv, h, srv2_ep, 0, 64, M3_GRANT_READ | M3_GRANT_WRITE, &g2), 0);
    memset(buf, 0, 6);
    EXPECT(m3_granted_read(usr, srv_ep, g, 0, NULL, 6), M3_EDVSFAULT);
    EXPECT(m3_granted_read(usr, srv_ep, g, 1, buf, 6), M3_EDVSRANGE);
    EXPECT(m3_granted_read(usr, srv_ep, g, 0, buf, 6), 0);
    EXPECT(strcmp(buf, "hello"), 0);
    EXPECT(m3_granted_write(usr, srv_ep, g, 0, buf, 6), M3_EDVSACCES); /* READ only */
    EXPECT(m3_granted_read(srv2, srv_ep, g, 0, buf, 6), M3_EDVSACCES); /* not its grant */
    EXPECT(m3_granted_read(usr, srv2_ep, g, 0, buf, 6), M3_EDVSPERM);  /* wrong grantor */
    EXPECT(m3_granted_read(usr, srv_ep, g ^ 0x10, 0, buf, 6), M3_EDVSPERM);
    /* vcopy */
    EXPECT(m3_vcopy(usr, srv_ep, g, 0, M3_SELF, h, 0, 6), M3_EDVSBADCALL);
    EXPECT(m3_vcopy(srv2, srv_ep, g2, 0, M3_SELF, h, 0, (2u << 20)), M3_EDVSRANGE);
    EXPECT(m3_vcopy(srv2, srv_ep, g2, 0, srv_ep, g2, 0, 6), M3_EDVSENDPOINT);
    EXPECT(m3_vcopy(srv2, 5000, g2, 0, M3_SELF, h, 0, 6), M3_EDVSRANGE);
    EXPECT(m3_vcopy(srv2, srv_ep, g2, 0, M3_SELF, h, 0, 6), M3_EDVSPROCSTS); /* srv not blocked */
    EXPECT(m3_revoke(srv, g), 0);
    EXPECT(m3_revoke(srv, g), M3_EDVSPERM); /* stale */
    EXPECT(m3_granted_read(usr, srv_ep, g, 0, buf, 6), M3_EDVSPERM);
    EXPECT(m3_buffer_alloc(srv2, 4096, &h2), 0);
    EXPECT(m3_buffer_give(srv2, h2, srv_ep), 0);
    EXPECT(m3_buffer_release(srv2, h2), M3_EDVSBADOWNER);
    EXPECT(m3_buffer_release(srv, h2), 0);
    EXPECT(m3_buffer_release(srv, h), 0);
    EXPECT(m3_buffer_release(srv, h), M3_EDVSBADF); /* stale */
    EXPECT(m3_buffer_write(srv, h, 0, buf, 1), M3_EDVSBADF);
    EXPECT(m3_granted_read(srv2, srv_ep, g2, 0, buf, 6), M3_EDVSPERM); /* lapsed with it */

    /* ---- EDVSBUSY: another thread is inside a call on the endpoint ---- */
    blk.proc = srv;
    blk.rcode = 1;
    checks++;
    if (pthread_create(&thread, NULL, receive_blocked, &blk) != 0) {
        failures++;
        fprintf(stderr, "pthread_create\n");
    } else {
        int32_t r = 0;
        int tries;
        /* until the thread is inside m3_receive (its slot shows RECEIVING) */
        for (tries = 0; tries < 500; tries++) {
            nap_ms(2);
            if (m3_getprocinfo(dc, 0, &pi) == 0 && (pi.flags & 8) != 0) break;
        }
        r = m3_send(srv, srv2_ep, &m, 0);
        EXPECT(r, M3_EDVSBUSY);
        EXPECT(m3_unbind(srv), M3_EDVSBUSY);
        EXPECT(m3_wakeup(srv2, srv_ep), 0);
        pthread_join(thread, NULL);
        EXPECT(blk.rcode, M3_EDVSWOKENUP);
    }

    /* ---- the current binding ---- */
    EXPECT(m3_send(M3_CURRENT, srv_ep, &m, 0), M3_EDVSNOTBIND);
    EXPECT(m3_unbind(M3_CURRENT), M3_EDVSNOTBIND);
    EXPECT(m3_current_dcid(&got_dcid), M3_EDVSNOTBIND);
    EXPECT(m3_bind_current(dcid, 5, 7, &cur_ep), M3_EDVSINVAL);
    EXPECT(m3_bind_current(dcid, 5, M3_BIND_PROCESS, NULL), M3_EDVSFAULT);
    EXPECT(m3_bind_current(40, 5, M3_BIND_PROCESS, &cur_ep), M3_EDVSBADDCID);
    EXPECT(m3_bind_current(dcid, 0, M3_BIND_PROCESS, &cur_ep), M3_EDVSSLOTUSED);
    EXPECT(m3_bind_current(dcid, 5, M3_BIND_PROCESS, &cur_ep), 0);
    EXPECT(m3_bind_current(dcid, 6, M3_BIND_PROCESS, &ep), M3_EDVSBUSY);
    EXPECT(m3_current_dcid(NULL), M3_EDVSFAULT);
    EXPECT(m3_current_dcid(&got_dcid), 0);
    EXPECT((int32_t)got_dcid, (int32_t)dcid);
    EXPECT(m3_getdcinfo(M3_CURRENT, &di), 0);
    EXPECT(m3_endpoint(M3_CURRENT, &ep), 0);
    EXPECT(ep, cur_ep);
    {
        struct thread_binding tb = {dcid, cur_ep, 0};
        checks++;
        if (pthread_create(&thread, NULL, bind_in_thread, &tb) != 0 ||
            pthread_join(thread, NULL) != 0 || tb.bad) {
            failures++;
            fprintf(stderr, "a thread's own binding (M3_BIND_THREAD)\n");
        }
        EXPECT(m3_endpoint(M3_CURRENT, &ep), 0); /* the main thread kept the process's */
        EXPECT(ep, cur_ep);
    }
    EXPECT(m3_unbind_current(dcid == 0 ? 1 : 0, cur_ep), M3_EDVSBADDCID);
    EXPECT(m3_unbind_current(dcid, cur_ep + 1), M3_EDVSENDPOINT);

    /* ---- fork: the child holds none of its parent's bindings ---- */
    fflush(stderr);
    child = fork();
    if (child == 0) {
        int bad = 0;
        bad |= m3_send(srv, srv2_ep, &m, 0) != M3_EDVSNOTBIND;
        bad |= m3_endpoint(M3_CURRENT, &ep) != M3_EDVSNOTBIND;
        bad |= m3_unbind(srv) != M3_EDVSNOTBIND;   /* closed here, left bound in the parent */
        bad |= m3_unbind(M3_CURRENT) != M3_EDVSNOTBIND;
        bad |= m3_bind_current(dcid, 7, M3_BIND_PROCESS, &ep) != 0; /* its own */
        bad |= m3_endpoint(M3_CURRENT, &ep) != 0 || ep != 7;
        bad |= m3_unbind(M3_CURRENT) != 0;
        _exit(bad);
    }
    checks++;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        failures++;
        fprintf(stderr, "fork: the child saw its parent's bindings\n");
    }
    EXPECT(m3_getprocinfo(dc, 0, &pi), 0);
    EXPECT((int32_t)pi.state, M3_SLOT_BOUND); /* the child did not unbind it */
    EXPECT(m3_notify(srv2, srv_ep), 0);       /* and the parent still uses it */
    EXPECT(m3_receive(srv, M3_ANY, &m, 0), 0);

    EXPECT(m3_unbind_current(dcid, cur_ep), 0);
    EXPECT(m3_unbind_current(dcid, cur_ep), M3_EDVSNOTBIND);
    {
        /* binding and unbinding in a loop holds no handles: more rounds than the tables have
         * entries */
        int i, bad = 0;
        for (i = 0; i < 4200 && !bad; i++) {
            bad |= m3_bind_current(dcid, 5, M3_BIND_PROCESS, &ep) != 0;
            bad |= m3_unbind(M3_CURRENT) != 0;
            bad |= m3_use_dc(dcid) != 0;
        }
        checks++;
        if (bad) {
            failures++;
            fprintf(stderr, "bind/unbind round %d failed\n", i);
        }
        EXPECT(m3_getep(M3_CURRENT, (uint32_t)getpid(), &ep), 0); /* the DC m3_use_dc chose */
        EXPECT(ep, srv_ep);
    }
    EXPECT(m3_send(M3_CURRENT, srv_ep, &m, 0), M3_EDVSNOTBIND);

    /* ---- stale endpoint handles ---- */
    EXPECT(m3_unbind(usr), 0);
    EXPECT(m3_unbind(usr), M3_EDVSBADF);
    EXPECT(m3_sendrec(usr, srv_ep, &m, 0), M3_EDVSBADF);
    EXPECT(m3_endpoint(usr, &ep), M3_EDVSBADF);
    EXPECT(m3_buffer_alloc(usr, 4096, &h), M3_EDVSBADF);
    EXPECT(m3_send(12345, srv_ep, &m, 0), M3_EDVSBADF);
    EXPECT(m3_send(-5, srv_ep, &m, 0), M3_EDVSBADF);
    EXPECT(m3_send(srv, usr_ep, &m, 0), M3_EDVSENDPOINT); /* unbound: its generation moved on */

    /* ---- a removed DC ---- */
    EXPECT(m3_dc_remove(dcname), 0);
    EXPECT(m3_send(srv, srv2_ep, &m, 0), M3_EDVSDCNOTRUN);
    EXPECT(m3_bind(dc, 9, NULL, &ep), M3_EDVSDCNOTRUN);
    EXPECT(m3_dc_open(dcname), M3_EDVSDCNOTRUN);
    EXPECT(m3_unbind(srv), 0); /* the handle closes; the region is gone anyway */
    EXPECT(m3_unbind(srv), M3_EDVSBADF);
    EXPECT(m3_unbind(srv2), 0);
    EXPECT(m3_dc_close(dc), 0);
    EXPECT(m3_dc_close(dc), M3_EDVSBADF);

    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("OK %d\n", checks);
    return 0;
}
