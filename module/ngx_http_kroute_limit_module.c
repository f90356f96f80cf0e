/*
 * ngx_http_kroute_limit_module: the route's rate, connection and bandwidth
 * limits (kRateLimit, kBandwidth: routetable/policy/rate_limit.h), preaccess
 * phase, as nginx's limit_req (burst, nodelay), limit_conn and limit_rate
 * that ingress-nginx writes for its limit-* annotations.
 *
 * Counters live in one shared memory zone the module owns, sized at startup
 * ("kroute_limits zone=10m;" at http level, 10m when absent), so every
 * worker counts the same client: a red-black tree of nodes keyed by {the
 * Ingress (namespace, name, uid), which limit, the client address}, under the slab
 * pool's mutex for the few dozen instructions of a lookup and update (as
 * limit_req and limit_conn do). Rate nodes are kept in a least recently used
 * queue: drained ones are freed as requests pass, and when the zone is full
 * the oldest is dropped (its client starts afresh). When no node can be had
 * at all (every one holds a request in progress), the limit is not applied
 * to that request: logged as an error once a second and counted
 * (kroute_limit_zone_full_total). Limits are about availability; a full
 * zone must not turn away every new client.
 */

#include "ngx_http_kroute_module.h"


/* a hash of the Ingress, the limit, family, address (and 2 zero bytes) */
#define NGX_HTTP_KROUTE_LIMIT_KEY_LEN       28
#define NGX_HTTP_KROUTE_LIMIT_DEFAULT_SIZE  (10 * 1024 * 1024)
/* kRateLimit records of one rule looked at; a rule has at most three */
#define NGX_HTTP_KROUTE_LIMIT_MAX_RATES     4

/* nginx's own values: $limit_req_status and $limit_conn_status show them */
#define NGX_HTTP_KROUTE_LIMIT_REQ_PASSED     1
#define NGX_HTTP_KROUTE_LIMIT_REQ_REJECTED   3
#define NGX_HTTP_KROUTE_LIMIT_CONN_PASSED    1
#define NGX_HTTP_KROUTE_LIMIT_CONN_REJECTED  2


typedef struct {
    ngx_rbtree_node_t             node;      /* key: crc32 of `key` */
    /* rate nodes: in the LRU queue, most recent first */
    ngx_queue_t                   queue;
    ngx_msec_t                    last;      /* of the last counted request */
    int64_t                       excess;    /* requests above the rate, x1000 */
    uint64_t                      rate;      /* requests per 1000 s, to expire */
    ngx_uint_t                    conns;     /* requests in progress */
    u_char                        key[NGX_HTTP_KROUTE_LIMIT_KEY_LEN];
} ngx_http_kroute_limit_node_t;

typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;
} ngx_http_kroute_limit_shctx_t;

typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_http_kroute_limit_shctx_t  *sh;
    ngx_slab_pool_t              *shpool;
} ngx_http_kroute_limit_main_conf_t;

typedef struct {
    ngx_slab_pool_t              *shpool;
    ngx_http_kroute_limit_node_t  *node;
} ngx_http_kroute_limit_cleanup_t;

/*
 * One rate limit of the request while it is decided. Its node is found
 * again to count the request: making another limit's node may have dropped
 * it (a full zone), so no pointer is kept across allocations.
 */
typedef struct {
    const kroute_policy_t        *record;
    u_char                        key[NGX_HTTP_KROUTE_LIMIT_KEY_LEN];
    uint32_t                      hash;
    ngx_uint_t                    found;
    int64_t                       excess;
    ngx_msec_int_t                ms;
} ngx_http_kroute_limit_rate_t;


static void *ngx_http_kroute_limit_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_limit_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_kroute_limits(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_limit_add_zone(ngx_conf_t *cf,
    ngx_http_kroute_limit_main_conf_t *lmcf, size_t size);
static ngx_int_t ngx_http_kroute_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_kroute_limit_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_limit_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_limit_rates(ngx_http_request_t *r,
    ngx_http_kroute_limit_main_conf_t *lmcf, ngx_http_kroute_ctx_t *ctx);
static ngx_int_t ngx_http_kroute_limit_connections(ngx_http_request_t *r,
    ngx_http_kroute_limit_main_conf_t *lmcf, ngx_http_kroute_ctx_t *ctx);
static void ngx_http_kroute_limit_bandwidth(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);
static ngx_uint_t ngx_http_kroute_limit_exempt(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record);
static uint32_t ngx_http_kroute_limit_key(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record, u_char *key);
static ngx_http_kroute_limit_node_t *ngx_http_kroute_limit_find(
    ngx_http_kroute_limit_main_conf_t *lmcf, u_char *key, uint32_t hash);
static ngx_http_kroute_limit_node_t *ngx_http_kroute_limit_get(
    ngx_http_kroute_limit_main_conf_t *lmcf, u_char *key, uint32_t hash,
    ngx_uint_t rate);
static int64_t ngx_http_kroute_limit_drained(uint64_t rate,
    ngx_msec_int_t ms);
static void ngx_http_kroute_limit_expire(
    ngx_http_kroute_limit_main_conf_t *lmcf, ngx_uint_t n);
static void ngx_http_kroute_limit_free(ngx_slab_pool_t *shpool,
    ngx_http_kroute_limit_shctx_t *sh, ngx_http_kroute_limit_node_t *node);
static void ngx_http_kroute_limit_cleanup(void *data);
static void ngx_http_kroute_limit_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static ngx_command_t  ngx_http_kroute_limit_commands[] = {

    { ngx_string("kroute_limits"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_kroute_limits,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_limit_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_limit_init,            /* postconfiguration */

    ngx_http_kroute_limit_create_main_conf,  /* create main configuration */
    ngx_http_kroute_limit_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_limit_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_limit_module_ctx,     /* module context */
    ngx_http_kroute_limit_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_kroute_limit_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_limit_main_conf_t));
}


static char *
ngx_http_kroute_limit_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_kroute_limit_main_conf_t  *lmcf = conf;

    if (lmcf->shm_zone == NULL
        && ngx_http_kroute_limit_add_zone(cf, lmcf,
                                          NGX_HTTP_KROUTE_LIMIT_DEFAULT_SIZE)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* kroute_limits zone=<size>; */

static char *
ngx_http_kroute_limits(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_limit_main_conf_t  *lmcf = conf;

    ssize_t     size;
    ngx_str_t  *value, s;

    if (lmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", use zone=<size>",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    s.data = value[1].data + 5;
    s.len = value[1].len - 5;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone size \"%V\" is invalid or below %ui bytes",
                           &s, 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_kroute_limit_add_zone(cf, lmcf, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_limit_add_zone(ngx_conf_t *cf,
    ngx_http_kroute_limit_main_conf_t *lmcf, size_t size)
{
    ngx_str_t  name = ngx_string("kroute_limits");

    lmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_kroute_limit_module);
    if (lmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    lmcf->shm_zone->init = ngx_http_kroute_limit_init_zone;
    lmcf->shm_zone->data = lmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_kroute_limit_main_conf_t  *olmcf = data;

    size_t                              len;
    ngx_slab_pool_t                    *shpool;
    ngx_http_kroute_limit_shctx_t      *sh;
    ngx_http_kroute_limit_main_conf_t  *lmcf;

    lmcf = shm_zone->data;

    /* a reload keeps the counters (the zone's size is unchanged) */
    if (olmcf) {
        lmcf->sh = olmcf->sh;
        lmcf->shpool = olmcf->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    lmcf->shpool = shpool;

    if (shm_zone->shm.exists) {
        lmcf->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_kroute_limit_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    lmcf->sh = sh;
    shpool->data = sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_kroute_limit_rbtree_insert);
    ngx_queue_init(&sh->queue);

    len = sizeof(" in kroute_limits zone");

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(shpool->log_ctx, " in kroute_limits zone", len);

    /* a full zone is this module's to report, once a second */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_limit_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_PREACCESS_PHASE,
                                             ngx_http_kroute_limit_handler);
}


static ngx_int_t
ngx_http_kroute_limit_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_http_kroute_ctx_t              *ctx;
    ngx_http_kroute_limit_main_conf_t  *lmcf;

    /* the client's request only: not auth or mirror subrequests */
    if (r != r->main || !ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_kroute_limit_module);

    /*
     * nginx's order (limit_req's handler runs before limit_conn's): a
     * request refused by a rate is never counted as a connection. The
     * request's bits, not the module ctx, say what is done: they survive
     * internal redirects (named locations, error pages), which run this
     * phase again.
     */

    if (!r->limit_req_status) {
        rc = ngx_http_kroute_limit_rates(r, lmcf, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (!r->limit_conn_status) {
        rc = ngx_http_kroute_limit_connections(r, lmcf, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ngx_http_kroute_limit_bandwidth(r, ctx);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_kroute_limit_rates(ngx_http_request_t *r,
    ngx_http_kroute_limit_main_conf_t *lmcf, ngx_http_kroute_ctx_t *ctx)
{
    uint32_t                        i;
    uint64_t                        rate, burst;
    ngx_msec_t                      now;
    ngx_uint_t                      n, k, full;
    const kroute_policy_t          *p, *refused;
    ngx_http_kroute_limit_rate_t    rates[NGX_HTTP_KROUTE_LIMIT_MAX_RATES];
    ngx_http_kroute_limit_node_t   *node;
    ngx_http_kroute_worker_stats_t  *stats;

    n = 0;

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind == KROUTE_POLICY_RATE_LIMIT
            && (p->flags == KROUTE_RATE_PER_SECOND
                || p->flags == KROUTE_RATE_PER_MINUTE)
            && n < NGX_HTTP_KROUTE_LIMIT_MAX_RATES
            && !ngx_http_kroute_limit_exempt(r, ctx, p))
        {
            rates[n].record = p;
            rates[n].hash = ngx_http_kroute_limit_key(r, ctx, p,
                                                      rates[n].key);
            n++;
        }
    }

    if (n == 0) {
        return NGX_DECLINED;
    }

    now = ngx_current_msec;
    refused = NULL;
    full = 0;

    ngx_shmtx_lock(&lmcf->shpool->mutex);

    ngx_http_kroute_limit_expire(lmcf, 1);

    /* as limit_req: decide every limit first, count in all or none */

    for (k = 0; k < n; k++) {
        p = rates[k].record;
        rate = (p->value & 0xffffffff) * 1000;
        if (p->flags == KROUTE_RATE_PER_MINUTE) {
            rate /= 60;
        }
        burst = (p->value >> 32) * 1000;

        node = ngx_http_kroute_limit_get(lmcf, rates[k].key, rates[k].hash,
                                         1);
        rates[k].found = node != NULL;

        if (node == NULL) {
            full = 1;
            continue;
        }

        node->rate = rate;

        if (node->last == 0) {
            /* a new node: this is its first request */
            rates[k].excess = 0;
            rates[k].ms = 1;
            continue;
        }

        rates[k].ms = (ngx_msec_int_t) (now - node->last);

        if (rates[k].ms < -60000) {
            rates[k].ms = 1;

        } else if (rates[k].ms < 0) {
            rates[k].ms = 0;
        }

        rates[k].excess = node->excess
                          - ngx_http_kroute_limit_drained(rate, rates[k].ms)
                          + 1000;

        if (rates[k].excess < 0) {
            rates[k].excess = 0;
        }

        if ((uint64_t) rates[k].excess > burst && refused == NULL) {
            refused = p;
        }
    }

    if (refused == NULL) {
        for (k = 0; k < n; k++) {
            node = rates[k].found
                   ? ngx_http_kroute_limit_find(lmcf, rates[k].key,
                                                rates[k].hash)
                   : NULL;

            if (node == NULL) {
                continue;
            }

            node->excess = rates[k].excess;

            if (rates[k].ms) {
                node->last = now ? now : 1;
            }
        }
    }

    ngx_shmtx_unlock(&lmcf->shpool->mutex);

    stats = ngx_http_kroute_worker_stats();

    if (full) {
        static ngx_msec_t  logged;

        if (stats) {
            stats->limit_zone_full++;
        }

        if (now - logged >= 1000 || logged == 0) {
            logged = now ? now : 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kroute: the kroute_limits zone is full: a rate "
                          "limit is not applied to this request (raise "
                          "kroute_limits zone=)");
        }
    }

    if (refused == NULL) {
        r->limit_req_status = NGX_HTTP_KROUTE_LIMIT_REQ_PASSED;
        return NGX_DECLINED;
    }

    r->limit_req_status = NGX_HTTP_KROUTE_LIMIT_REQ_REJECTED;

    if (stats) {
        stats->limited_requests++;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "kroute: limiting requests, %s %uD of Ingress %*s/%*s",
                  refused->flags == KROUTE_RATE_PER_SECOND
                      ? "limit-rps" : "limit-rpm",
                  (uint32_t) (refused->value & 0xffffffff),
                  ctx->route.ns.len, ctx->route.ns.data,
                  ctx->route.ingress.len, ctx->route.ingress.data);

    return refused->code;
}


static ngx_int_t
ngx_http_kroute_limit_connections(ngx_http_request_t *r,
    ngx_http_kroute_limit_main_conf_t *lmcf, ngx_http_kroute_ctx_t *ctx)
{
    u_char                            key[NGX_HTTP_KROUTE_LIMIT_KEY_LEN];
    uint32_t                          i, hash, limit;
    ngx_pool_cleanup_t               *cln;
    const kroute_policy_t            *p;
    ngx_http_kroute_limit_node_t     *node;
    ngx_http_kroute_worker_stats_t   *stats;
    ngx_http_kroute_limit_cleanup_t  *lc;

    p = NULL;

    for (i = 0; i < ctx->route.policy_count; i++) {
        if (ctx->route.policies[i].kind == KROUTE_POLICY_RATE_LIMIT
            && ctx->route.policies[i].flags == KROUTE_RATE_CONNECTIONS)
        {
            p = &ctx->route.policies[i];
            break;
        }
    }

    if (p == NULL || ngx_http_kroute_limit_exempt(r, ctx, p)) {
        return NGX_DECLINED;
    }

    limit = (uint32_t) (p->value & 0xffffffff);

    /* before counting: a failure here must not leave a count behind */
    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_kroute_limit_cleanup_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    hash = ngx_http_kroute_limit_key(r, ctx, p, key);
    stats = ngx_http_kroute_worker_stats();

    ngx_shmtx_lock(&lmcf->shpool->mutex);

    node = ngx_http_kroute_limit_get(lmcf, key, hash, 0);

    if (node == NULL) {
        static ngx_msec_t  logged;

        ngx_shmtx_unlock(&lmcf->shpool->mutex);

        if (stats) {
            stats->limit_zone_full++;
        }

        if (ngx_current_msec - logged >= 1000 || logged == 0) {
            logged = ngx_current_msec ? ngx_current_msec : 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kroute: the kroute_limits zone is full: "
                          "limit-connections is not applied to this "
                          "request (raise kroute_limits zone=)");
        }

        return NGX_DECLINED;
    }

    if (node->conns >= limit) {
        ngx_shmtx_unlock(&lmcf->shpool->mutex);

        r->limit_conn_status = NGX_HTTP_KROUTE_LIMIT_CONN_REJECTED;

        if (stats) {
            stats->limited_connections++;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: limiting connections, limit-connections %uD "
                      "of Ingress %*s/%*s", limit,
                      ctx->route.ns.len, ctx->route.ns.data,
                      ctx->route.ingress.len, ctx->route.ingress.data);

        return p->code;
    }

    node->conns++;

    ngx_shmtx_unlock(&lmcf->shpool->mutex);

    r->limit_conn_status = NGX_HTTP_KROUTE_LIMIT_CONN_PASSED;

    cln->handler = ngx_http_kroute_limit_cleanup;
    lc = cln->data;
    lc->shpool = lmcf->shpool;
    lc->node = node;

    return NGX_DECLINED;
}


static void
ngx_http_kroute_limit_bandwidth(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    const kroute_policy_t  *p;

    p = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                           KROUTE_POLICY_BANDWIDTH);
    if (p == NULL) {
        return;
    }

    /* nginx's write filter reads these instead of limit_rate directives */
    r->limit_rate = (size_t) (p->value & 0xffffffff) * 1024;
    r->limit_rate_set = 1;
    r->limit_rate_after = (size_t) (p->value >> 32) * 1024;
    r->limit_rate_after_set = 1;
}


static ngx_uint_t
ngx_http_kroute_limit_exempt(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record)
{
    kroute_str_t  list;

    if (record->b.length == 0) {
        return 0;
    }

    list = kroute_policy_str(&ctx->route, record->b);

    return kroute_cidr_match(list.data, list.len, r->connection->sockaddr);
}


/*
 * The node key: a 64-bit hash of the Ingress (namespace, name and uid, the
 * record's `a`), which limit, and the client's address (after realip;
 * IPv4-mapped IPv6 as IPv4). Returns the key's rbtree hash.
 */

static uint32_t
ngx_http_kroute_limit_key(ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx,
    const kroute_policy_t *record, u_char *key)
{
    static const u_char    v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0xff, 0xff };
    size_t                 i, k;
    uint64_t               h;
    kroute_str_t           parts[3];
    const u_char          *addr;
    struct sockaddr       *sa;

    ngx_memzero(key, NGX_HTTP_KROUTE_LIMIT_KEY_LEN);

    parts[0] = ctx->route.ns;
    parts[1] = ctx->route.ingress;
    parts[2] = kroute_policy_str(&ctx->route, record->a);

    /* FNV-1a, each part ended by a 0 byte (names hold none) */
    h = 0xcbf29ce484222325ULL;

    for (k = 0; k < 3; k++) {
        for (i = 0; i < parts[k].len; i++) {
            h = (h ^ parts[k].data[i]) * 0x100000001b3ULL;
        }

        h *= 0x100000001b3ULL;
    }

    ngx_memcpy(key, &h, 8);

    key[8] = (u_char) record->flags;

    sa = r->connection->sockaddr;

    if (sa->sa_family == AF_INET) {
        key[9] = 4;
        ngx_memcpy(key + 10, &((struct sockaddr_in *) sa)->sin_addr, 4);

    } else if (sa->sa_family == AF_INET6) {
        addr = ((struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;

        if (ngx_memcmp(addr, v4mapped, 12) == 0) {
            key[9] = 4;
            ngx_memcpy(key + 10, addr + 12, 4);

        } else {
            key[9] = 6;
            ngx_memcpy(key + 10, addr, 16);
        }
    }

    return ngx_crc32_short(key, NGX_HTTP_KROUTE_LIMIT_KEY_LEN);
}


/* The node of `key`, or NULL. */

static ngx_http_kroute_limit_node_t *
ngx_http_kroute_limit_find(ngx_http_kroute_limit_main_conf_t *lmcf,
    u_char *key, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_kroute_limit_node_t  *n;

    node = lmcf->sh->rbtree.root;
    sentinel = lmcf->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_http_kroute_limit_node_t *) node;

        rc = ngx_memcmp(key, n->key, NGX_HTTP_KROUTE_LIMIT_KEY_LEN);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * The node of `key`, made when there is none (a rate node first in the LRU
 * queue); NULL when the zone is full.
 */

static ngx_http_kroute_limit_node_t *
ngx_http_kroute_limit_get(ngx_http_kroute_limit_main_conf_t *lmcf,
    u_char *key, uint32_t hash, ngx_uint_t rate)
{
    ngx_http_kroute_limit_node_t  *n;

    n = ngx_http_kroute_limit_find(lmcf, key, hash);

    if (n != NULL) {
        if (rate) {
            ngx_queue_remove(&n->queue);
            ngx_queue_insert_head(&lmcf->sh->queue, &n->queue);
        }

        return n;
    }

    n = ngx_slab_alloc_locked(lmcf->shpool,
                              sizeof(ngx_http_kroute_limit_node_t));

    if (n == NULL) {
        /* full: drop the least recently used rate node, then try again */
        ngx_http_kroute_limit_expire(lmcf, 0);

        n = ngx_slab_alloc_locked(lmcf->shpool,
                                  sizeof(ngx_http_kroute_limit_node_t));
        if (n == NULL) {
            return NULL;
        }
    }

    ngx_memzero(n, sizeof(ngx_http_kroute_limit_node_t));
    ngx_memcpy(n->key, key, NGX_HTTP_KROUTE_LIMIT_KEY_LEN);
    n->node.key = hash;

    ngx_rbtree_insert(&lmcf->sh->rbtree, &n->node);

    if (rate) {
        ngx_queue_insert_head(&lmcf->sh->queue, &n->queue);
    }

    return n;
}


/*
 * Requests (x1000) a bucket of `rate` drains in `ms`: saturated instead of
 * overflowing for a high rate long idle.
 */

static int64_t
ngx_http_kroute_limit_drained(uint64_t rate, ngx_msec_int_t ms)
{
    if (ms <= 0) {
        return 0;
    }

    if (rate > (uint64_t) INT64_MAX / (uint64_t) ms) {
        return INT64_MAX / 2;
    }

    return (int64_t) (rate * (uint64_t) ms / 1000);
}


/*
 * As limit_req: frees up to two rate nodes from the old end of the queue
 * whose excess has drained and which were unused for a minute; n == 0 frees
 * the oldest one whatever its state first.
 */

static void
ngx_http_kroute_limit_expire(ngx_http_kroute_limit_main_conf_t *lmcf,
    ngx_uint_t n)
{
    int64_t                        excess;
    ngx_msec_t                     now;
    ngx_queue_t                   *q;
    ngx_msec_int_t                 ms;
    ngx_http_kroute_limit_node_t  *node;

    now = ngx_current_msec;

    while (n < 3) {

        if (ngx_queue_empty(&lmcf->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&lmcf->sh->queue);
        node = ngx_queue_data(q, ngx_http_kroute_limit_node_t, queue);

        if (n++ != 0) {
            ms = (ngx_msec_int_t) (now - node->last);
            ms = ngx_abs(ms);

            if (ms < 60000) {
                return;
            }

            excess = node->excess
                     - ngx_http_kroute_limit_drained(node->rate, ms);

            if (excess > 0) {
                return;
            }
        }

        ngx_queue_remove(q);
        ngx_http_kroute_limit_free(lmcf->shpool, lmcf->sh, node);
    }
}


static void
ngx_http_kroute_limit_free(ngx_slab_pool_t *shpool,
    ngx_http_kroute_limit_shctx_t *sh, ngx_http_kroute_limit_node_t *node)
{
    ngx_rbtree_delete(&sh->rbtree, &node->node);
    ngx_slab_free_locked(shpool, node);
}


/* The request ends: one connection less; a node without any goes. */

static void
ngx_http_kroute_limit_cleanup(void *data)
{
    ngx_http_kroute_limit_cleanup_t  *lc = data;

    ngx_http_kroute_limit_shctx_t  *sh;

    ngx_shmtx_lock(&lc->shpool->mutex);

    sh = lc->shpool->data;

    if (lc->node->conns > 0) {
        lc->node->conns--;
    }

    if (lc->node->conns == 0) {
        ngx_http_kroute_limit_free(lc->shpool, sh, lc->node);
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);
}


/* Ordered by hash, then by key, as lookups walk the tree. */

static void
ngx_http_kroute_limit_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_kroute_limit_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            n = (ngx_http_kroute_limit_node_t *) node;
            t = (ngx_http_kroute_limit_node_t *) temp;

            p = (ngx_memcmp(n->key, t->key, NGX_HTTP_KROUTE_LIMIT_KEY_LEN)
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
