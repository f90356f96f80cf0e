/*
 * A TLS load client for bench/tls: threads that each open a new TLS
 * connection per request (SNI cycling over a list of host names), send one
 * HTTP/1.1 request and read the response; with -r each connection resumes the
 * newest session its host got on this thread (a warm-up pass before the
 * clock starts makes one per host). Prints handshakes per second, failures and
 * how many connections resumed.
 *
 * usage: tls_client -p PORT -t SECONDS -c THREADS [-r] -f NAMES_FILE
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES  100000

static char          *names[MAX_NAMES];
static size_t         nnames;
static int            port, seconds = 5, threads = 2, resume;
static SSL_CTX       *ctx;
static atomic_long    done, failed, reused;
static atomic_int     stop;

typedef struct {
    int               id;
    /* with -r: this thread's newest session per name (TLS 1.3 tickets are for one use) */
    SSL_SESSION     **sessions;
} worker_t;

static pthread_barrier_t  warm;


static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
one_request(worker_t *w, size_t n)
{
    int                 fd, one = 1, ok = 0;
    SSL                *ssl = NULL;
    char                buf[4096], req[512];
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
        goto out;
    }

    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, names[n]);
    if (resume && w->sessions[n]) {
        SSL_set_session(ssl, w->sessions[n]);
    }
    if (SSL_connect(ssl) != 1) {
        goto out;
    }

    snprintf(req, sizeof(req), "GET /kroute-bench HTTP/1.1\r\nHost: %s\r\n"
             "Connection: close\r\n\r\n", names[n]);
    if (SSL_write(ssl, req, strlen(req)) <= 0) {
        goto out;
    }
    /* the response is small: "HTTP/1.1 200" in the first read, then EOF */
    int got = SSL_read(ssl, buf, sizeof(buf) - 1);
    if (got < 12 || memcmp(buf + 9, "200", 3) != 0) {
        goto out;
    }
    while (SSL_read(ssl, buf, sizeof(buf)) > 0) { /* drain; tickets too */ }

    if (SSL_session_reused(ssl)) {
        atomic_fetch_add(&reused, 1);
    }
    if (resume) {
        if (w->sessions[n]) {
            SSL_SESSION_free(w->sessions[n]);
        }
        w->sessions[n] = SSL_get1_session(ssl);
    }
    ok = 1;

out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    ERR_clear_error();
    return ok;
}


static void *
run(void *arg)
{
    worker_t  *w = arg;
    size_t     n = (size_t) w->id * 7919;

    if (resume) {   /* a session for every name before the clock starts */
        for (size_t i = 0; i < nnames; i++) {
            one_request(w, i);
        }
    }
    pthread_barrier_wait(&warm);

    while (!atomic_load(&stop)) {
        n = (n + 1) % nnames;
        if (one_request(w, n)) {
            atomic_fetch_add(&done, 1);
        } else {
            atomic_fetch_add(&failed, 1);
        }
    }
    return NULL;
}


int
main(int argc, char **argv)
{
    int         opt, i;
    char        line[512];
    FILE       *f = NULL;
    double      start, elapsed;
    pthread_t  *tids;
    worker_t   *ws;

    while ((opt = getopt(argc, argv, "p:t:c:rf:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 't': seconds = atoi(optarg); break;
        case 'c': threads = atoi(optarg); break;
        case 'r': resume = 1; break;
        case 'f': f = fopen(optarg, "r"); break;
        default:
            fprintf(stderr, "usage: %s -p PORT -t SECONDS -c THREADS [-r] -f NAMES\n", argv[0]);
            return 2;
        }
    }
    if (f == NULL || port == 0) {
        fprintf(stderr, "need -p PORT and a readable -f NAMES file\n");
        return 2;
    }
    while (nnames < MAX_NAMES && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) {
            names[nnames++] = strdup(line);
        }
    }
    fclose(f);
    if (nnames == 0) {
        return 2;
    }

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);

    tids = calloc(threads, sizeof(pthread_t));
    ws = calloc(threads, sizeof(worker_t));
    pthread_barrier_init(&warm, NULL, threads + 1);
    for (i = 0; i < threads; i++) {
        ws[i].id = i;
        ws[i].sessions = calloc(nnames, sizeof(SSL_SESSION *));
        pthread_create(&tids[i], NULL, run, &ws[i]);
    }
    pthread_barrier_wait(&warm);
    atomic_store(&done, 0);
    atomic_store(&failed, 0);
    atomic_store(&reused, 0);
    start = now();
    sleep(seconds);
    atomic_store(&stop, 1);
    for (i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
    }
    elapsed = now() - start;

    printf("{\"connections\": %ld, \"failed\": %ld, \"reused\": %ld, \"seconds\": %.3f, "
           "\"per_second\": %.1f}\n", (long) done, (long) failed, (long) reused, elapsed,
           done / elapsed);
    return 0;
}
