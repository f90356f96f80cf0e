/*
 * The route table as the nginx module sees it: a C interface over routetable/
 * (C++). One table per worker. Every function is noexcept on the C++ side: no
 * exception ever reaches nginx.
 */

#ifndef _KROUTE_TABLE_H_INCLUDED_
#define _KROUTE_TABLE_H_INCLUDED_

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

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

/* A string in the snapshot's string pool (kroute_table_str() resolves it). */
typedef struct {
    uint32_t              offset;
    uint32_t              length;
} kroute_strref_t;

/*
 * A policy record, as the snapshot stores it (routetable/format.h): what a
 * rule or host does besides choosing a backend. Each kind is applied by one
 * module of its own (ngx_http_kroute_<kind>_module.c); routetable/policy/
 * says what code, flags, a and b mean for it.
 */
typedef struct {
    uint16_t              kind;
    uint16_t              code;
    uint32_t              flags;
    /* a backend index of its own (canary, error pages), or KROUTE_NO_BACKEND */
    uint32_t              backend;
    uint32_t              reserved;
    /* a number the kind defines: milliseconds, bytes, a weight */
    uint64_t              value;
    kroute_strref_t       a;
    kroute_strref_t       b;
} kroute_policy_t;

#define KROUTE_POLICY_REDIRECT          1
#define KROUTE_POLICY_REWRITE           2
#define KROUTE_POLICY_UPSTREAM_HOST     3
#define KROUTE_POLICY_FORWARDED_PREFIX  4
#define KROUTE_POLICY_PROXY_SETTING     5
#define KROUTE_POLICY_PROTOCOL          6
#define KROUTE_POLICY_CANARY            7
#define KROUTE_POLICY_AFFINITY          8
#define KROUTE_POLICY_BALANCE           9
#define KROUTE_POLICY_ERROR_PAGES       10
#define KROUTE_POLICY_MIRROR            11
#define KROUTE_POLICY_DENY              12
#define KROUTE_POLICY_SOURCE_RANGE      13
#define KROUTE_POLICY_BASIC_AUTH        14
#define KROUTE_POLICY_EXTERNAL_AUTH     15
#define KROUTE_POLICY_CLIENT_CERT       16
#define KROUTE_POLICY_CORS              17
#define KROUTE_POLICY_RATE_LIMIT        18
#define KROUTE_POLICY_BANDWIDTH         19
#define KROUTE_POLICY_SATISFY           20
#define KROUTE_POLICY_SPLIT             21
#define KROUTE_POLICY_REQUEST_HEADER    22
#define KROUTE_POLICY_RESPONSE_HEADER   23
#define KROUTE_POLICY_SERVER_NAME       24

/* kRedirect flags (routetable/policy/redirect.h) */
#define KROUTE_REDIRECT_ONLY_ROOT            1
#define KROUTE_REDIRECT_ONLY_PLAIN_HTTP      2
#define KROUTE_REDIRECT_TRIM_TRAILING_SLASH  4

/* kProxySetting codes and proxy-next-upstream bits (routetable/policy/proxy_setting.h) */
#define KROUTE_PROXY_CONNECT_TIMEOUT        1
#define KROUTE_PROXY_READ_TIMEOUT           2
#define KROUTE_PROXY_SEND_TIMEOUT           3
#define KROUTE_PROXY_NEXT_UPSTREAM          4
#define KROUTE_PROXY_NEXT_UPSTREAM_TRIES    5
#define KROUTE_PROXY_NEXT_UPSTREAM_TIMEOUT  6
#define KROUTE_PROXY_BODY_SIZE              7
#define KROUTE_PROXY_BODY_BUFFER_SIZE       8
#define KROUTE_PROXY_BUFFERING              9
#define KROUTE_PROXY_BUFFER_SIZE            10
#define KROUTE_PROXY_BUFFERS_NUMBER         11
#define KROUTE_PROXY_REQUEST_BUFFERING      12
#define KROUTE_PROXY_MAX_TEMP_FILE_SIZE     13

#define KROUTE_NEXT_ERROR           0x0001
#define KROUTE_NEXT_TIMEOUT         0x0002
#define KROUTE_NEXT_INVALID_HEADER  0x0004
#define KROUTE_NEXT_HTTP_500        0x0008
#define KROUTE_NEXT_HTTP_502        0x0010
#define KROUTE_NEXT_HTTP_503        0x0020
#define KROUTE_NEXT_HTTP_504        0x0040
#define KROUTE_NEXT_HTTP_403        0x0080
#define KROUTE_NEXT_HTTP_404        0x0100
#define KROUTE_NEXT_HTTP_429        0x0200
#define KROUTE_NEXT_NON_IDEMPOTENT  0x0400
#define KROUTE_NEXT_OFF             0x0800
#define KROUTE_NEXT_REPEAT          0x1000
/*
 * kErrorPages (routetable/policy/error_pages.h): `a` lists statuses as
 * "404,503", status i at 4*i; `b` is the rule's Service port.
 */
#define KROUTE_ERROR_PAGES_WHEN_NO_ENDPOINTS  1
#define KROUTE_ERROR_PAGES_ONLY_OWN_ERRORS    2

/* kMirror flags (routetable/policy/mirror.h) */
#define KROUTE_MIRROR_REQUEST_BODY            1
/* kExternalAuth parts (codes) and flags (routetable/policy/external_auth.h) */
#define KROUTE_AUTH_REQUEST                  0
#define KROUTE_AUTH_SIGNIN                   1
#define KROUTE_AUTH_RESPONSE_HEADERS         2
#define KROUTE_AUTH_REQUEST_REDIRECT         3
#define KROUTE_AUTH_CACHE                    4
#define KROUTE_AUTH_ALWAYS_SET_COOKIE        1
/* kCanary codes and flags (routetable/policy/canary.h) */
#define KROUTE_CANARY_BY_HEADER              1
#define KROUTE_CANARY_BY_COOKIE              2
#define KROUTE_CANARY_BY_WEIGHT              3
#define KROUTE_CANARY_PATTERN                1

/* kAffinity codes and flags (routetable/policy/affinity.h) */
#define KROUTE_AFFINITY_BALANCED             0
#define KROUTE_AFFINITY_PERSISTENT           1
#define KROUTE_AFFINITY_CHANGE_ON_FAILURE    1
#define KROUTE_AFFINITY_LEGACY_CANARY        2
#define KROUTE_AFFINITY_SECURE               4
#define KROUTE_AFFINITY_CONDITIONAL_SAMESITE_NONE  8

/* kBalance codes (routetable/policy/balance.h) */
#define KROUTE_BALANCE_ROUND_ROBIN           0
#define KROUTE_BALANCE_EWMA                  1
#define KROUTE_BALANCE_HASH                  2

/* kProtocol codes and flags (routetable/policy/protocol.h) */
#define KROUTE_PROTOCOL_HTTP         1
#define KROUTE_PROTOCOL_HTTPS        2
#define KROUTE_PROTOCOL_GRPC         3
#define KROUTE_PROTOCOL_GRPCS        4
#define KROUTE_PROTOCOL_AUTO_HTTP    5
#define KROUTE_PROTOCOL_HTTP10       1
#define KROUTE_PROTOCOL_VERIFY       2
#define KROUTE_PROTOCOL_SERVER_NAME  4

/* kRequestHeader and kResponseHeader codes (routetable/policy/header_modifier.h) */
#define KROUTE_HEADER_SET            1
#define KROUTE_HEADER_ADD            2
#define KROUTE_HEADER_REMOVE         3

/* kRateLimit flags: which limit (routetable/policy/rate_limit.h) */
#define KROUTE_RATE_PER_SECOND       1
#define KROUTE_RATE_PER_MINUTE       2
#define KROUTE_RATE_CONNECTIONS      3

/* $0..$9 of a regex path: (start, end) offsets into the path looked up */
#define KROUTE_MAX_CAPTURES  10

/* What lookup(host, path) found; strings point into the pinned snapshot. */
typedef struct {
    /* a backend index; KROUTE_NO_BACKEND: no route */
    uint32_t              backend;
    /* ready endpoints of that backend */
    uint32_t              ready;
    /* 1: no rule matched, the default backend serves */
    unsigned              default_backend;
    /* the rule's policy records, then its host's (host-wide, applied first) */
    const kroute_policy_t  *policies;
    uint32_t              policy_count;
    uint32_t              host_policy_count;
    const kroute_policy_t  *host_policies;
    /* the snapshot's string pool, for the records' strings */
    const unsigned char  *strings;
    /* 1: X-Forwarded-Proto is the request's scheme (--use-forwarded-headers) */
    unsigned              use_forwarded_headers;
    /* groups a regex path captured, (start, end) pairs; start > end: unset */
    uint32_t              capture_count;
    uint32_t              captures[2 * KROUTE_MAX_CAPTURES];
    /* bytes of the path the matched rule's path covers (its Prefix; all for Exact) */
    uint32_t              prefix_length;
    /* the Ingress's namespace (the backend's for the default backend) */
    kroute_str_t          ns;
    /* empty for the default backend */
    kroute_str_t          ingress;
    kroute_str_t          service;
} kroute_route_t;

/* A backend of the snapshot, for records that name one (kroute_policy_t.backend). */
typedef struct {
    uint32_t              ready;            /* ready endpoints */
    kroute_str_t          ns;
    kroute_str_t          service;
} kroute_backend_t;

/* One endpoint, copied out of the snapshot. */
typedef struct {
    uint8_t               family;           /* 4 or 6 */
    uint8_t               address[16];      /* network byte order */
    uint16_t              port;
    uint32_t              index;            /* among the ready endpoints */
    /* the same in every snapshot, worker and replica (session cookies) */
    uint64_t              id;
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
    uint64_t              regex_limit_hits;
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

/*
 * What a rule's match conditions read of a request (routetable/conditions.h):
 * the method, the raw query string (without '?'), a header's value and memory
 * that lives as long as the request. header() finds a header by name in any
 * case, joins repeated ones with ", ", and returns 1 with *value set, or 0;
 * scratch() returns `size` bytes, or NULL. Neither may allocate anywhere but
 * in memory the request owns.
 */
typedef struct {
    kroute_str_t          method;
    kroute_str_t          args;
    int                 (*header)(void *data, const unsigned char *name,
                                  size_t len, kroute_str_t *value);
    unsigned char      *(*scratch)(void *data, size_t size);
    void                 *data;
} kroute_request_t;

uint64_t kroute_snapshot_generation(const kroute_snapshot_t *snapshot);
/*
 * The scope (routetable/model.h: a host space of its own, 0 the shared one)
 * of a connection whose local address is `local` (c->local_sockaddr: the
 * listening socket's address, or the real one where nginx looked it up; may
 * be NULL). A wildcard address (0.0.0.0, ::) is not known: only scopes for any
 * address match it. No syscall, no allocation.
 */
uint16_t kroute_snapshot_scope(const kroute_snapshot_t *snapshot,
    const struct sockaddr *local);
/*
 * The route of host + path among the hosts of `scope`; `request` (may be
 * NULL) lets rules with match conditions match.
 */
void kroute_snapshot_lookup(const kroute_snapshot_t *snapshot,
    const unsigned char *host, size_t host_len, const unsigned char *path,
    size_t path_len, const kroute_request_t *request, uint16_t scope,
    kroute_route_t *route);
/*
 * 1 when a TLS request in `scope` whose connection's SNI is `name` and whose
 * Host is `host` (nginx's, lowercase and without port) was misdirected: the
 * two select different HTTPS listeners of the scope's Gateway, and the answer
 * is 421 (routetable/snapshot.h, SnapshotView::misdirected). 0 for scopes
 * without listener names.
 */
int kroute_snapshot_misdirected(const kroute_snapshot_t *snapshot,
    uint16_t scope, const unsigned char *name, size_t name_len,
    const unsigned char *host, size_t host_len);
/*
 * kServerName (routetable/policy/server_name.h): 1 when the route's host
 * takes a TLS connection whose SNI is `name` (the host has no kServerName
 * record, or one whose pattern covers the name), else 0. No allocation.
 */
int kroute_server_name_allowed(const kroute_route_t *route,
    const unsigned char *name, size_t len);

/* Fills `info` and returns 0, or -1 when `backend` is out of range. */
int kroute_snapshot_backend(const kroute_snapshot_t *snapshot,
    uint32_t backend, kroute_backend_t *info);

/*
 * Equal for records with equal contents: the balancer keeps upstream
 * connections made under different kProtocol records apart with it.
 */
uint64_t kroute_policy_fingerprint(const kroute_route_t *route,
    const kroute_policy_t *record);

/* A record's string. */
static inline kroute_str_t
kroute_policy_str(const kroute_route_t *route, kroute_strref_t ref)
{
    kroute_str_t  s;

    s.len = ref.length;
    s.data = route->strings + ref.offset;

    return s;
}

/*
 * A packed CIDR list (routetable/policy/cidr.h): KROUTE_CIDR_SIZE-byte
 * entries {family 4 or 6, prefix length, 16 address bytes}. 1 when the
 * address `sa` is in one of its ranges (an IPv4-mapped IPv6 address counts as
 * IPv4), else 0. No allocation; a scan of the list.
 */
#define KROUTE_CIDR_SIZE  18

static inline int
kroute_cidr_match(const unsigned char *list, size_t len,
    const struct sockaddr *sa)
{
    static const unsigned char  v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 0xff, 0xff };
    const unsigned char  *addr, *e;
    unsigned int          family, bits, full, rest;
    size_t                i;

    if (sa->sa_family == AF_INET) {
        addr = (const unsigned char *)
                   &((const struct sockaddr_in *) sa)->sin_addr;
        family = 4;

    } else if (sa->sa_family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        family = 6;

        if (memcmp(addr, v4mapped, 12) == 0) {
            addr += 12;
            family = 4;
        }

    } else {
        return 0;
    }

    for (i = 0; i + KROUTE_CIDR_SIZE <= len; i += KROUTE_CIDR_SIZE) {
        e = list + i;

        if (e[0] != family) {
            continue;
        }

        bits = e[1];
        full = bits / 8;
        rest = bits % 8;

        if (memcmp(e + 2, addr, full) != 0) {
            continue;
        }

        if (rest != 0
            && ((e[2 + full] ^ addr[full]) & (0xffu << (8 - rest)) & 0xffu))
        {
            continue;
        }

        return 1;
    }

    return 0;
}


/*
 * kCors (routetable/policy/cors.h): flags, and whether the request's Origin
 * is one of the record's space-separated origins: matched whole and
 * case-insensitively; in "scheme://STAR.rest" (STAR an asterisk) one DNS label
 * ([A-Za-z0-9-]+) stands for the asterisk, or with any_depth one or more
 * ("a.b"). 1 on a match, else 0. No allocation.
 */
#define KROUTE_CORS_CREDENTIALS  1
#define KROUTE_CORS_ANY_ORIGIN   2
#define KROUTE_CORS_ANY_DEPTH    4
#define KROUTE_CORS_ECHO         8

static inline int
kroute_cors_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static inline int
kroute_cors_same(const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (kroute_cors_lower(a[i]) != kroute_cors_lower(b[i])) {
            return 0;
        }
    }

    return 1;
}

/* labels: DNS labels ([A-Za-z0-9-]+), one, or with `dots` several */
static inline int
kroute_cors_labels(const unsigned char *s, size_t n, int dots)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < n; i++) {
        c = s[i];

        if (c == '.' && dots && i > 0 && i + 1 < n && s[i - 1] != '.') {
            continue;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            return 0;
        }
    }

    return n > 0;
}

static inline int
kroute_cors_origin_match(const unsigned char *list, size_t len,
    const unsigned char *origin, size_t origin_len, int any_depth)
{
    const unsigned char  *p, *end, *star;
    size_t                n, prefix, suffix, i;

    end = list + len;

    while (list < end) {
        p = (const unsigned char *) memchr(list, ' ', end - list);
        n = (p ? p : end) - list;

        star = NULL;
        for (i = 0; i + 5 <= n; i++) {
            if (memcmp(list + i, "://*.", 5) == 0) {
                star = list + i + 3;
                break;
            }
        }

        if (star == NULL) {
            if (n == origin_len && kroute_cors_same(list, origin, n)) {
                return 1;
            }

        } else {
            /* scheme://, the labels the star stands for, then ".rest" */
            prefix = star - list;
            suffix = n - prefix - 1;

            if (origin_len > prefix + suffix
                && kroute_cors_same(list, origin, prefix)
                && kroute_cors_same(star + 1, origin + origin_len - suffix,
                                    suffix)
                && kroute_cors_labels(origin + prefix,
                                      origin_len - prefix - suffix, any_depth))
            {
                return 1;
            }
        }

        list += n + 1;
    }

    return 0;
}


/* The first record of `kind` in a list, or NULL. */
static inline const kroute_policy_t *
kroute_policy_find(const kroute_policy_t *policies, uint32_t count,
    uint16_t kind)
{
    uint32_t  i;

    for (i = 0; i < count; i++) {
        if (policies[i].kind == kind) {
            return &policies[i];
        }
    }

    return NULL;
}

/* The request values a template (a redirect's Location, a rewrite) uses. */
typedef struct {
    kroute_str_t          scheme;
    kroute_str_t          host;
    kroute_str_t          http_host;
    kroute_str_t          request_uri;
    kroute_str_t          uri;
    kroute_str_t          args;
    /* the path the captures refer to */
    kroute_str_t          subject;
    const uint32_t       *captures;
    uint32_t              capture_count;
    unsigned              trim_trailing_slash;
    /* percent-encode decoded values in the path part too (a Location) */
    unsigned              escape_path;
    /* bytes of uri the matched rule's path covers ($prefix_rest follows) */
    size_t                prefix_length;
} kroute_template_ctx_t;

/*
 * Expanded length of a template, then the expansion (returns its end);
 * *query (may be NULL) gets the offset of the template's own '?', or the
 * length when it has none.
 */
size_t kroute_template_length(kroute_str_t text,
    const kroute_template_ctx_t *ctx);
unsigned char *kroute_template_expand(kroute_str_t text,
    const kroute_template_ctx_t *ctx, unsigned char *out, size_t *query);

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
 * How kroute_table_pick_by() chooses: KROUTE_BALANCE_* or KROUTE_PICK_ENDPOINT
 * (the endpoint whose id is `key`, -1 when it is not ready or was tried).
 * KROUTE_BALANCE_HASH: rendezvous hashing of `key`. Failed endpoints are
 * skipped while another one is left, as by kroute_table_pick().
 */
#define KROUTE_PICK_ENDPOINT                 16

int kroute_table_pick_by(kroute_table_t *table,
    const kroute_snapshot_t *snapshot, uint32_t backend, const uint8_t *tried,
    uint64_t now_ms, unsigned method, uint64_t key,
    kroute_endpoint_t *endpoint);
/* EWMA balancing: a response time of `endpoint` (picked from `backend`). */
void kroute_table_observe(kroute_table_t *table,
    const kroute_snapshot_t *snapshot, uint32_t backend,
    const kroute_endpoint_t *endpoint, uint64_t response_ms, uint64_t now_ms);
/* Whether regex `pattern` matches anywhere in `value` (canary header pattern). */
int kroute_table_match_value(kroute_table_t *table, kroute_str_t pattern,
    kroute_str_t value);
/* Whether a User-Agent accepts SameSite=None (1) or not (0). */
int kroute_same_site_none_compatible(kroute_str_t user_agent);
/* A per-worker pseudo-random number (canary weights, session keys). */
uint64_t kroute_table_random(kroute_table_t *table);
/* A hash of a key (upstream-hash-by). */
uint64_t kroute_hash(const unsigned char *data, size_t len);
/* A canary header's or cookie's "always" (1), "never" (0), or neither (-1). */
int kroute_canary_keyword(kroute_str_t value);
/* Whether a kByWeight canary record's weight takes this request. */
int kroute_canary_weight(uint64_t value, uint64_t random);
/*
 * The index of the kSplit record of `policies` a uniform random number picks
 * (each with probability weight / sum of weights), or -1 when they sum to 0.
 */
int kroute_split_pick(const kroute_policy_t *policies, uint32_t count,
    uint64_t random);
/* Session cookie values: 16 hex digits; parse returns 0, or -1. */
#define KROUTE_COOKIE_VALUE_LEN  16
void kroute_cookie_value_format(uint64_t number, unsigned char *out);
int kroute_cookie_value_parse(const unsigned char *data, size_t len,
    uint64_t *number);

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
