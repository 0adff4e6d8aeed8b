/*
 * dvk_compat.h: the original DVK user library's names on top of libm3ipc (m3ipc.h).
 *
 * Written by hand (m3ipc.h is generated). A program written for the original kernel module's
 * library (stub_dvkcall.h, ipc.h, com.h, dvs_errno.h) includes this one header instead and links
 * with -lm3ipc:
 *
 *     dvk_open();                          attach to this node's fabric
 *     ep = dvk_bind(dcid, nr);             bind slot nr of the DC created with that id
 *                                          (dvs dc create NAME --id DCID); the endpoint, or an
 *                                          error (< EDVSERRCODE for a task's slot, < 0 otherwise)
 *     dvk_sendrec(server_ep, &m);          0 or a negative EDVS code
 *
 * How it maps: dvk_bind makes a process-wide current binding, dvk_tbind one for the calling
 * thread (m3_bind_current); every messaging call then acts for the current binding (the handle
 * M3_CURRENT), as the original's calls act for the calling process. After fork() the child
 * holds no binding of its parent (calls return EDVSNOTBIND) and binds its own.
 *
 * Differences from the original, by design:
 * - a message is 64 bytes; its "address" fields (m1_p1, ...) are 64-bit integers carrying pool
 *   grant ids or buffer handles, never pointers. dvk_vcopy's addresses are such ids (cast to
 *   void * as the original's prototype has it): a grant the other side issued to the caller, or
 *   a buffer handle/grant of the caller's own;
 * - dvk_reply_T's timeout is ignored (reply never blocks); so is dvk_unbind_T's;
 * - dvk_unbind unbinds only the caller's own current binding (EDVSENDPOINT for another's);
 * - dvk_wait4bind() and dvk_getep() use the current binding's DC, or before any bind the DC
 *   chosen with m3_use_dc(dcid);
 * - calls are not interrupted by signals (the original returned -EINTR).
 */
#ifndef DVK_COMPAT_H
#define DVK_COMPAT_H

#include <stdint.h>
#include "m3ipc.h"

/* ---- special endpoints, timeouts and message types (com.h, ipc.h) ---- */
#define ANY              M3_ANY
#define NONE             M3_NONE
#define SELF             M3_SELF
#define HARDWARE         M3_HARDWARE
#define KERNEL           M3_HARDWARE
#define SYSTEM           M3_SYSTEM
#define SYSTASK(n)       (M3_SYSTEM - (n))
#define TIMEOUT_FOREVER  M3_TIMEOUT_FOREVER
#define TIMEOUT_NOWAIT   M3_TIMEOUT_NOWAIT
#define NOTIFY_MESSAGE   M3_NOTIFY_MESSAGE
#define NOTIFY_FROM(p)   (M3_NOTIFY_MESSAGE | ((p) & 0xfff))
#ifndef OK
#define OK 0
#endif
/* dvk_wait4bindep_X commands (the values are this library's). */
#define WAIT_BIND   0
#define WAIT_UNBIND 1

/* ---- message field names (ipc.h) ---- */
#define m1_i1 m_u.m_m1.m1i1
#define m1_i2 m_u.m_m1.m1i2
#define m1_i3 m_u.m_m1.m1i3
#define m1_p1 m_u.m_m1.m1p1
#define m1_p2 m_u.m_m1.m1p2
#define m1_p3 m_u.m_m1.m1p3
#define m2_i1 m_u.m_m2.m2i1
#define m2_i2 m_u.m_m2.m2i2
#define m2_i3 m_u.m_m2.m2i3
#define m2_l1 m_u.m_m2.m2l1
#define m2_l2 m_u.m_m2.m2l2
#define m2_p1 m_u.m_m2.m2p1
#define m3_i1 m_u.m_m3.m3i1
#define m3_i2 m_u.m_m3.m3i2
#define m3_p1 m_u.m_m3.m3p1
#define m3_ca1 m_u.m_m3.m3ca1
#define m4_l1 m_u.m_m4.m4l1
#define m4_l2 m_u.m_m4.m4l2
#define m4_l3 m_u.m_m4.m4l3
#define m4_l4 m_u.m_m4.m4l4
#define m4_l5 m_u.m_m4.m4l5
#define m7_i1 m_u.m_m7.m7i1
#define m7_i2 m_u.m_m7.m7i2
#define m7_i3 m_u.m_m7.m7i3
#define m7_i4 m_u.m_m7.m7i4
#define m7_p1 m_u.m_m7.m7p1
#define m7_p2 m_u.m_m7.m7p2
#define m9_i1 m_u.m_m9.m9i1
#define m9_l1 m_u.m_m9.m9l1
#define m9_t1 m_u.m_m9.m9t1
#define NOTIFY_FLAGS     m9_i1
#define NOTIFY_ARG       m9_l1
#define NOTIFY_TIMESTAMP m9_t1

/* ---- error numbers (dvs_errno.h) ---- */
#define EDVSERRCODE (-300)
#define EDVSPERM M3_EDVSPERM
#define EDVSNOENT M3_EDVSNOENT
#define EDVSSRCH M3_EDVSSRCH
#define EDVSINTR M3_EDVSINTR
#define EDVSIO M3_EDVSIO
#define EDVSNXIO M3_EDVSNXIO
#define EDVS2BIG M3_EDVS2BIG
#define EDVSNOEXEC M3_EDVSNOEXEC
#define EDVSBADF M3_EDVSBADF
#define EDVSCHILD M3_EDVSCHILD
#define EDVSAGAIN M3_EDVSAGAIN
#define EDVSNOMEM M3_EDVSNOMEM
#define EDVSACCES M3_EDVSACCES
#define EDVSFAULT M3_EDVSFAULT
#define EDVSNOTBLK M3_EDVSNOTBLK
#define EDVSBUSY M3_EDVSBUSY
#define EDVSEXIST M3_EDVSEXIST
#define EDVSXDEV M3_EDVSXDEV
#define EDVSNODEV M3_EDVSNODEV
#define EDVSNOTDIR M3_EDVSNOTDIR
#define EDVSISDIR M3_EDVSISDIR
#define EDVSINVAL M3_EDVSINVAL
#define EDVSNFILE M3_EDVSNFILE
#define EDVSMFILE M3_EDVSMFILE
#define EDVSNOTTY M3_EDVSNOTTY
#define EDVSTXTBSY M3_EDVSTXTBSY
#define EDVSFBIG M3_EDVSFBIG
#define EDVSNOSPC M3_EDVSNOSPC
#define EDVSSPIPE M3_EDVSSPIPE
#define EDVSROFS M3_EDVSROFS
#define EDVSMLINK M3_EDVSMLINK
#define EDVSPIPE M3_EDVSPIPE
#define EDVSDOM M3_EDVSDOM
#define EDVSRANGE M3_EDVSRANGE
#define EDVSDEADLK M3_EDVSDEADLK
#define EDVSNAMETOOLONG M3_EDVSNAMETOOLONG
#define EDVSNOLCK M3_EDVSNOLCK
#define EDVSNOSYS M3_EDVSNOSYS
#define EDVSNOTEMPTY M3_EDVSNOTEMPTY
#define EDVSLOOP M3_EDVSLOOP
#define EDVSPACKSIZE M3_EDVSPACKSIZE
#define EDVSOUTOFBUFS M3_EDVSOUTOFBUFS
#define EDVSBADIOCTL M3_EDVSBADIOCTL
#define EDVSBADMODE M3_EDVSBADMODE
#define EDVSWOULDBLOCK M3_EDVSWOULDBLOCK
#define EDVSBADDEST M3_EDVSBADDEST
#define EDVSDSTNOTRCH M3_EDVSDSTNOTRCH
#define EDVSISCONN M3_EDVSISCONN
#define EDVSADDRINUSE M3_EDVSADDRINUSE
#define EDVSCONNREFUSED M3_EDVSCONNREFUSED
#define EDVSCONNRESET M3_EDVSCONNRESET
#define EDVSTIMEDOUT M3_EDVSTIMEDOUT
#define EDVSURG M3_EDVSURG
#define EDVSNOURG M3_EDVSNOURG
#define EDVSNOTCONN M3_EDVSNOTCONN
#define EDVSSHUTDOWN M3_EDVSSHUTDOWN
#define EDVSNOCONN M3_EDVSNOCONN
#define EDVSAFNOSUPPORT M3_EDVSAFNOSUPPORT
#define EDVSPROTONOSUPPORT M3_EDVSPROTONOSUPPORT
#define EDVSPROTOTYPE M3_EDVSPROTOTYPE
#define EDVSINPROGRESS M3_EDVSINPROGRESS
#define EDVSADDRNOTAVAIL M3_EDVSADDRNOTAVAIL
#define EDVSALREADY M3_EDVSALREADY
#define EDVSMSGSIZE M3_EDVSMSGSIZE
#define EDVSNOTSOCK M3_EDVSNOTSOCK
#define EDVSNOPROTOOPT M3_EDVSNOPROTOOPT
#define EDVSGENERIC M3_EDVSGENERIC
#define EDVSLOCKED M3_EDVSLOCKED
#define EDVSBADCALL M3_EDVSBADCALL
#define EDVSBADSRCDST M3_EDVSBADSRCDST
#define EDVSCALLDENIED M3_EDVSCALLDENIED
#define EDVSDEADSRCDST M3_EDVSDEADSRCDST
#define EDVSNOTREADY M3_EDVSNOTREADY
#define EDVSBADREQUEST M3_EDVSBADREQUEST
#define EDVSSRCDIED M3_EDVSSRCDIED
#define EDVSDSTDIED M3_EDVSDSTDIED
#define EDVSTRAPDENIED M3_EDVSTRAPDENIED
#define EDVSDONTREPLY M3_EDVSDONTREPLY
#define EDVSBADNODEID M3_EDVSBADNODEID
#define EDVSBADDCID M3_EDVSBADDCID
#define EDVSDCNOTRUN M3_EDVSDCNOTRUN
#define EDVSBADPROC M3_EDVSBADPROC
#define EDVSBADPID M3_EDVSBADPID
#define EDVSENDPOINT M3_EDVSENDPOINT
#define EDVSNOPROXY M3_EDVSNOPROXY
#define EDVSRMTPROC M3_EDVSRMTPROC
#define EDVSLCLPROC M3_EDVSLCLPROC
#define EDVSNOTBIND M3_EDVSNOTBIND
#define EDVSPROXYRUN M3_EDVSPROXYRUN
#define EDVSACKDST M3_EDVSACKDST
#define EDVSACKSRC M3_EDVSACKSRC
#define EDVSACKWAIT M3_EDVSACKWAIT
#define EDVSNODEBUSY M3_EDVSNODEBUSY
#define EDVSNONODE M3_EDVSNONODE
#define EDVSDVSBUSY M3_EDVSDVSBUSY
#define EDVSDVSINIT M3_EDVSDVSINIT
#define EDVSNODCNODE M3_EDVSNODCNODE
#define EDVSPROCRUN M3_EDVSPROCRUN
#define EDVSNOMSG M3_EDVSNOMSG
#define EDVSDCRUN M3_EDVSDCRUN
#define EDVSPROCSTS M3_EDVSPROCSTS
#define EDVSNODEFREE M3_EDVSNODEFREE
#define EDVSDCNODE M3_EDVSDCNODE
#define EDVSBADPROXY M3_EDVSBADPROXY
#define EDVSONCOPY M3_EDVSONCOPY
#define EDVSENQUEUED M3_EDVSENQUEUED
#define EDVSOVERRUN M3_EDVSOVERRUN
#define EDVSBADOWNER M3_EDVSBADOWNER
#define EDVSMIGRATE M3_EDVSMIGRATE
#define EDVSPROXYFREE M3_EDVSPROXYFREE
#define EDVSGRPLEADER M3_EDVSGRPLEADER
#define EDVSPRIVILEGES M3_EDVSPRIVILEGES
#define EDVSBINDTYPE M3_EDVSBINDTYPE
#define EDVSSLOTUSED M3_EDVSSLOTUSED
#define EDVSBADRANGE M3_EDVSBADRANGE
#define EDVSBADVALUE M3_EDVSBADVALUE
#define EDVSBADDIR M3_EDVSBADDIR
#define EDVSBADFILE M3_EDVSBADFILE
#define EDVSRSCBUSY M3_EDVSRSCBUSY
#define EDVSNAMESIZE M3_EDVSNAMESIZE
#define EDVSALLOCMEM M3_EDVSALLOCMEM
#define EDVSPROXYID M3_EDVSPROXYID
#define EDVSREPLPROC M3_EDVSREPLPROC
#define EDVSALIGN M3_EDVSALIGN
#define EDVSWOKENUP M3_EDVSWOKENUP
#define EDVSBADTRAMP M3_EDVSBADTRAMP
#define EDVSUSR2USR M3_EDVSUSR2USR
#define EDVSKRN2USR M3_EDVSKRN2USR
#define EDVSUSR2KRN M3_EDVSUSR2KRN
#define EDVSPRIMARY M3_EDVSPRIMARY
#define EDVSNOREPLICA M3_EDVSNOREPLICA
#define EDVSRESTARTSYS M3_EDVSRESTARTSYS

/* ---- the calls (stub_dvkcall.h) ---- */

/* A message argument may be a message * or, as some original programs pass it, an integer
 * holding one. */
#define DVK_MSG_(m) ((message *)(uintptr_t)(m))

static inline long dvk_open(void) { return (long)m3_open(); }

/* The endpoint of a bind or wait4bind, or the error. (Called with the call's result first in
 * a statement of its own: the order C evaluates arguments in is unspecified.) */
static inline long dvk_ep_or_error_(int32_t rcode, int32_t ep) {
    return rcode < 0 ? (long)rcode : (long)ep;
}

static inline long dvk_bind(int dcid, int nr) {
    int32_t ep = M3_NONE;
    int32_t rcode = m3_bind_current((uint32_t)dcid, nr, M3_BIND_PROCESS, &ep);
    return dvk_ep_or_error_(rcode, ep);
}

static inline long dvk_tbind(int dcid, int nr) {
    int32_t ep = M3_NONE;
    int32_t rcode = m3_bind_current((uint32_t)dcid, nr, M3_BIND_THREAD, &ep);
    return dvk_ep_or_error_(rcode, ep);
}

static inline long dvk_unbind_T(int dcid, int ep, long timeout) {
    (void)timeout;
    return (long)m3_unbind_current((uint32_t)dcid, ep);
}
#define dvk_unbind(dcid, ep) dvk_unbind_T((dcid), (ep), TIMEOUT_FOREVER)

static inline long dvk_wait4bindep_X(int cmd, int ep, long timeout) {
    int32_t got = M3_NONE, rcode;
    if (cmd == WAIT_UNBIND) {
        return (long)m3_dc_wait4unbind(M3_CURRENT, ep, (int64_t)timeout);
    }
    if (cmd != WAIT_BIND) {
        return (long)M3_EDVSINVAL;
    }
    rcode = m3_dc_wait4bind(M3_CURRENT, ep, (int64_t)timeout, &got);
    return dvk_ep_or_error_(rcode, got);
}
#define dvk_wait4bind()               dvk_wait4bindep_X(WAIT_BIND, SELF, TIMEOUT_FOREVER)
#define dvk_wait4bindep(ep)           dvk_wait4bindep_X(WAIT_BIND, (ep), TIMEOUT_FOREVER)
#define dvk_wait4unbind(ep)           dvk_wait4bindep_X(WAIT_UNBIND, (ep), TIMEOUT_FOREVER)
#define dvk_wait4bind_T(to)           dvk_wait4bindep_X(WAIT_BIND, SELF, (to))
#define dvk_wait4bindep_T(ep, to)     dvk_wait4bindep_X(WAIT_BIND, (ep), (to))
#define dvk_wait4unbind_T(ep, to)     dvk_wait4bindep_X(WAIT_UNBIND, (ep), (to))

static inline long dvk_getep(int pid) {
    int32_t ep = M3_NONE;
    int32_t rcode = m3_getep(M3_CURRENT, (uint32_t)pid, &ep);
    return dvk_ep_or_error_(rcode, ep);
}

#define dvk_send_T(ep, m, to)    ((long)m3_send(M3_CURRENT, (ep), DVK_MSG_(m), (int64_t)(to)))
#define dvk_receive_T(ep, m, to) ((long)m3_receive(M3_CURRENT, (ep), DVK_MSG_(m), (int64_t)(to)))
#define dvk_sendrec_T(ep, m, to) ((long)m3_sendrec(M3_CURRENT, (ep), DVK_MSG_(m), (int64_t)(to)))
#define dvk_rcvrqst_T(m, to)     ((long)m3_rcvrqst(M3_CURRENT, DVK_MSG_(m), (int64_t)(to)))
#define dvk_reply_T(ep, m, to)   ((void)(to), (long)m3_reply(M3_CURRENT, (ep), DVK_MSG_(m)))
#define dvk_send(ep, m)          dvk_send_T((ep), (m), TIMEOUT_FOREVER)
#define dvk_receive(ep, m)       dvk_receive_T((ep), (m), TIMEOUT_FOREVER)
#define dvk_sendrec(ep, m)       dvk_sendrec_T((ep), (m), TIMEOUT_FOREVER)
#define dvk_rcvrqst(m)           dvk_rcvrqst_T((m), TIMEOUT_FOREVER)
#define dvk_reply(ep, m)         dvk_reply_T((ep), (m), TIMEOUT_FOREVER)
#define dvk_notify(dst)          ((long)m3_notify(M3_CURRENT, (dst)))

static inline long dvk_vcopy(int src_ep, void *src_addr, int dst_ep, void *dst_addr, int bytes) {
    if (bytes < 0) {
        return (long)M3_EDVSRANGE;
    }
    return (long)m3_vcopy(M3_CURRENT, src_ep, (uint64_t)(uintptr_t)src_addr, 0, dst_ep,
                          (uint64_t)(uintptr_t)dst_addr, 0, (size_t)bytes);
}

static inline long dvk_wakeup(int dcid, int ep) {
    uint32_t mine = 0;
    int32_t r = m3_current_dcid(&mine);
    if (r < 0) {
        return (long)r;
    }
    if ((uint32_t)dcid != mine) {
        return (long)M3_EDVSBADDCID;
    }
    return (long)m3_wakeup(M3_CURRENT, ep);
}

#endif /* DVK_COMPAT_H */
