/*
 * first200: the moment a host starts answering 200, for bench/propagation.
 *
 * Started before the change is made, it prints "ready", then polls
 * http://127.0.0.1:PORT/ with "Host: HOST", a new connection per poll, every
 * INTERVAL_US microseconds, until a response starts with "HTTP/1.1 200". It
 * then prints the CLOCK_MONOTONIC time of that response in seconds (the clock
 * of Python's time.monotonic()) and exits 0; after TIMEOUT_S seconds it exits 1.
 * A Python poller spends milliseconds per poll on a busy machine, which would
 * be measured as propagation; this one spends tens of microseconds.
 *
 * usage: first200 PORT HOST INTERVAL_US TIMEOUT_S
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 1: the response is a 200; 0: anything else, or no response */
static int poll_once(const struct sockaddr_in *addr, const char *request, size_t length)
{
    char   status[16];
    size_t got = 0;
    int    fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return 0;
    }
    struct timeval limit = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (connect(fd, (const struct sockaddr *) addr, sizeof *addr) != 0
        || write(fd, request, length) != (ssize_t) length) {
        close(fd);
        return 0;
    }
    while (got < 12) {
        ssize_t n = read(fd, status + got, 12 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t) n;
    }
    close(fd);
    return got == 12 && memcmp(status, "HTTP/1.1 200", 12) == 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: first200 PORT HOST INTERVAL_US TIMEOUT_S\n");
        return 2;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short) atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    char request[512];
    int  length = snprintf(request, sizeof request,
                           "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[2]);
    if (length <= 0 || (size_t) length >= sizeof request) {
        fprintf(stderr, "first200: host name too long\n");
        return 2;
    }
    long   interval_us = atol(argv[3]);
    double deadline = now() + atof(argv[4]);

    printf("ready\n");
    fflush(stdout);
    while (now() < deadline) {
        if (poll_once(&addr, request, (size_t) length)) {
            printf("%.6f\n", now());
            return 0;
        }
        usleep((useconds_t) interval_us);
    }
    fprintf(stderr, "first200: %s not served within %s s\n", argv[2], argv[4]);
    return 1;
}
