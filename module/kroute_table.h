/*
 * The route table as the nginx module sees it: a C interface over routetable/
 * (C++). One table per worker. Every function is noexcept on the C++ side: no
 * exception ever reaches nginx.
 */

#ifndef _KROUTE_TABLE_H_INCLUDED_
#define _KROUTE_TABLE_H_INCLUDED_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kroute_table_s     kroute_table_t;
typedef struct kroute_snapshot_s  kroute_snapshot_t;

#define KROUTE_NO_BACKEND  0xffffffffu

typedef enum {
    KROUTE_POLL_UNCHANGED = 0,
    KROUTE_POLL_PICKED_UP,
    KROUTE_POLL_REJECTED,
    KROUTE_POLL_NO_TABLE
} kroute_poll_e;

typedef struct {
    size_t                len;
    const unsigned char  *data;
} kroute_str_t;

/* What lookup(host, path) found; strings point into the pinned snapshot. */
typedef struct {
    /* a backend index; KROUTE_NO_BACKEND: no route */
    uint32_t              backend;
    /* ready endpoints of that backend */
    uint32_t              ready;
    /* 1: no rule matched, the default backend serves */
    unsigned              default_backend;
    /* 1: the rule answers plain HTTP with a redirect to https:// */
    unsigned              ssl_redirect;
    /* the Ingress's namespace (the backend's for the default backend) */
    kroute_str_t          ns;
    /* empty for the default backend */
    kroute_str_t          ingress;
    kroute_str_t          service;
} kroute_route_t;

/* One endpoint, copied out of the snapshot. */
typedef struct {
    uint8_t               family;           /* 4 or 6 */
    uint8_t               address[16];      /* network byte order */
    uint16_t              port;
    uint32_t              index;            /* among the ready endpoints */
} kroute_endpoint_t;

typedef struct {
    uint64_t              generation;       /* 0: no snapshot yet */
    uint64_t              built_unix_ms;
    uint64_t              hosts;
    uint64_t              routes;
    uint64_t              backends;
    uint64_t              endpoints;
    uint64_t              pickups;
    uint64_t              rejections;
} kroute_table_stats_t;

/* NULL when out of memory. */
kroute_table_t *kroute_table_create(const char *dir);
void kroute_table_destroy(kroute_table_t *table);

/* Per request: one atomic load when nothing changed. */
kroute_poll_e kroute_table_poll(kroute_table_t *table, uint64_t now_ms);
/*
 * On a timer, also when idle: picks up new generations and releases unpinned
 * old snapshots.
 */
kroute_poll_e kroute_table_refresh(kroute_table_t *table, uint64_t now_ms);

/*
 * The current snapshot, pinned until kroute_table_unpin(); NULL when there is
 * none.
 */
kroute_snapshot_t *kroute_table_pin(kroute_table_t *table);
void kroute_table_unpin(kroute_table_t *table, kroute_snapshot_t *snapshot);

uint64_t kroute_snapshot_generation(const kroute_snapshot_t *snapshot);
void kroute_snapshot_lookup(const kroute_snapshot_t *snapshot,
    const unsigned char *host, size_t host_len, const unsigned char *path,
    size_t path_len, kroute_route_t *route);

/*
 * Balancer: picks a ready endpoint of `backend` by smooth weighted round-
 * robin (per worker), never one whose bit is set in `tried` (may be NULL),
 * and none marked failed while another one is left. Returns 0 and fills
 * `endpoint`, or -1 when every ready endpoint was tried.
 */
int kroute_table_pick(kroute_table_t *table,
    const kroute_snapshot_t *snapshot, uint32_t backend, const uint8_t *tried,
    uint64_t now_ms, kroute_endpoint_t *endpoint);
/*
 * Passive health: skip this endpoint (by address and port, in any snapshot)
 * until `until_ms`.
 */
void kroute_table_mark_failed(kroute_table_t *table,
    const kroute_endpoint_t *endpoint, uint64_t until_ms);

void kroute_table_stats(const kroute_table_t *table,
    kroute_table_stats_t *stats);
/*
 * The last error (a refused snapshot, a file that could not be opened):
 * copied, truncated, into buf.
 */
size_t kroute_table_last_error(const kroute_table_t *table, unsigned char *buf,
    size_t size);

#ifdef __cplusplus
}
#endif

#endif /* _KROUTE_TABLE_H_INCLUDED_ */
