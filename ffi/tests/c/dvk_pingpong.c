/*
 * dvk_pingpong.c: a ping-pong written the way the original DVK loop tests were (a parent and a
 * forked child bound to one DC, send/receive then sendrec loops, throughput printed), using only
 * the original's names from dvk_compat.h.
 *
 *     dvk_pingpong DCID LOOPS
 *
 * The parent binds slot 2 (server), the child slot 1 (client). Exit status 0 when every reply
 * matched and both sides finished.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "dvk_compat.h"

#define SERVER_NR 2
#define CLIENT_NR 1
#define REPLY_TYPE 0x0B

#define ERROR_EXIT(rcode) do { \
        fprintf(stderr, "%s:%d: rcode=%ld\n", __FILE__, __LINE__, (long)(rcode)); \
        exit(1); \
    } while (0)

static double seconds(struct timeval *t0) {
    struct timeval t1;
    gettimeofday(&t1, NULL);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_usec - t0->tv_usec) / 1e6;
}

static int client(int dcid, int loops) {
    long ret, ep;
    int i;
    message *m_ptr;
    struct timeval t0;

    ep = dvk_bind(dcid, CLIENT_NR);
    if (ep != CLIENT_NR) ERROR_EXIT(ep);
    ret = dvk_wait4bindep_T(SERVER_NR, 10000);
    if (ret < EDVSERRCODE) ERROR_EXIT(ret);

    m_ptr = (message *)malloc(sizeof(message));
    memset(m_ptr, 0x00, sizeof(message));

    /* loop 1: send / receive */
    gettimeofday(&t0, NULL);
    for (i = 0; i < loops; i++) {
        m_ptr->m_type = 0x0A;
        m_ptr->m1_i1 = i;
        ret = dvk_send(SERVER_NR, m_ptr);
        if (ret < 0) ERROR_EXIT(ret);
        ret = dvk_receive_T(SERVER_NR, (long)m_ptr, TIMEOUT_FOREVER);
        if (ret < 0) ERROR_EXIT(ret);
        if (m_ptr->m_type != REPLY_TYPE || m_ptr->m1_i1 != i + 1 || m_ptr->m_source != SERVER_NR) {
            fprintf(stderr, "CLIENT: bad reply type=%d m1_i1=%d source=%d\n", m_ptr->m_type,
                    m_ptr->m1_i1, m_ptr->m_source);
            exit(1);
        }
    }
    printf("send/receive: %d loops, Throughput = %f [msg/s]\n", loops,
           (double)(2 * loops) / seconds(&t0));

    /* loop 2: sendrec */
    gettimeofday(&t0, NULL);
    for (i = 0; i < loops; i++) {
        m_ptr->m_type = 0x0A;
        m_ptr->m1_i1 = i;
        ret = dvk_sendrec(SERVER_NR, m_ptr);
        if (ret < 0) ERROR_EXIT(ret);
        if (m_ptr->m_type != REPLY_TYPE || m_ptr->m1_i1 != i + 1) ERROR_EXIT(m_ptr->m_type);
    }
    printf("sendrec: %d loops, Throughput = %f [msg/s]\n", loops,
           (double)(2 * loops) / seconds(&t0));

    /* the end: a notify the server waits for, and its acknowledgement (unbinding before the
     * server took the notify would withdraw it) */
    ret = dvk_notify(SERVER_NR);
    if (ret < 0) ERROR_EXIT(ret);
    ret = dvk_receive_T(SERVER_NR, m_ptr, 10000);
    if (ret < 0) ERROR_EXIT(ret);
    ret = dvk_unbind(dcid, CLIENT_NR);
    if (ret < 0) ERROR_EXIT(ret);
    free(m_ptr);
    return 0;
}

static int server(int dcid, int loops) {
    long ret, ep;
    int i;
    message m;

    ep = dvk_bind(dcid, SERVER_NR);
    if (ep != SERVER_NR) ERROR_EXIT(ep);
    memset(&m, 0, sizeof m);
    for (i = 0; i < 2 * loops; i++) {
        ret = dvk_receive_T(ANY, &m, 10000);
        if (ret < 0) ERROR_EXIT(ret);
        m.m_type = REPLY_TYPE;
        m.m1_i1 = m.m1_i1 + 1;
        ret = dvk_send_T(m.m_source, &m, 10000);
        if (ret < 0) ERROR_EXIT(ret);
    }
    ret = dvk_receive_T(CLIENT_NR, &m, 10000);
    if (ret < 0) ERROR_EXIT(ret);
    if (m.m_type != NOTIFY_FROM(CLIENT_NR) || m.m_source != CLIENT_NR) ERROR_EXIT(m.m_type);
    m.m_type = REPLY_TYPE;
    ret = dvk_send_T(CLIENT_NR, &m, 10000);
    if (ret < 0) ERROR_EXIT(ret);
    ret = dvk_unbind(dcid, SERVER_NR);
    if (ret < 0) ERROR_EXIT(ret);
    return 0;
}

int main(int argc, char *argv[]) {
    int dcid, loops, status;
    pid_t child;
    long ret;

    if (argc != 3) {
        fprintf(stderr, "usage: %s <dcid> <loops>\n", argv[0]);
        exit(1);
    }
    dcid = atoi(argv[1]);
    loops = atoi(argv[2]);
    ret = dvk_open();
    if (ret < 0) ERROR_EXIT(ret);

    child = fork();
    if (child < 0) ERROR_EXIT(-1);
    if (child == 0) {
        exit(client(dcid, loops));
    }
    server(dcid, loops);
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "client failed\n");
        exit(1);
    }
    printf("OK\n");
    return 0;
}
