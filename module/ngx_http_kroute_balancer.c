/*
 * The kroute upstream balancer: "kroute_balancer" in an upstream block. Peers
 * come from the backend the request was routed to, not from "server" lines;
 * the choice is a per-worker smooth weighted round-robin over ready endpoints
 * (kroute_table_pick). Composes with "keepalive" (which must follow it) and
 * with proxy_next_upstream: a failed endpoint is not tried twice by one
 * request (unless the rule's retries repeat endpoints, KROUTE_NEXT_REPEAT:
 * then a new round starts once every ready one failed), and after a connect
 * failure it is skipped by the worker for fail_timeout. A rule's kAffinity and kBalance records (routetable/policy/
 * affinity.h, balance.h) change the choice: a session cookie's endpoint,
 * consistent hashing of a key of request variables, or EWMA.
 */

#include "ngx_http_kroute_module.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_kroute_ctx_t       *ctx;
    ngx_msec_t                   fail_timeout;
    /* TLS settings of the route's own (kProtocol), 0: none; see get_peer */
    uint64_t                     tls_tag;
    uint8_t                     *tried;      /* allocated on the first retry */
    uint32_t                     tried_count; /* bits set in tried */
    kroute_endpoint_t            endpoint;   /* the one being tried */
    const kroute_policy_t       *affinity;   /* kAffinity, or NULL */
    unsigned                     method;     /* KROUTE_BALANCE_* */
    uint64_t                     key;        /* the hash key (method HASH) */
    uint64_t                     session;    /* a balanced session's key */
    ngx_msec_t                   start;      /* of this attempt, for EWMA */
} ngx_http_kroute_peer_data_t;

/*
 * One attempt's peer address, in the request pool: the snapshot may be
 * unmapped before logs are.
 */
typedef struct {
    union {
        struct sockaddr          sockaddr;
        struct sockaddr_in       sin;
#if (NGX_HAVE_INET6)
        struct sockaddr_in6      sin6;
#endif
        /* room for the TLS tag after the address, see get_peer */
        u_char                   bytes[sizeof(struct sockaddr_in6)
                                       + sizeof(uint64_t)];
    } u;
    ngx_str_t                    name;
    u_char                       text[NGX_SOCKADDR_STRLEN];
} ngx_http_kroute_peer_addr_t;


static ngx_int_t ngx_http_kroute_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_kroute_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_kroute_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_kroute_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static ngx_int_t ngx_http_kroute_pick(ngx_http_kroute_peer_data_t *pd);
static ngx_int_t ngx_http_kroute_pick_session(ngx_http_kroute_peer_data_t *pd);
static uint64_t ngx_http_kroute_hash_key(ngx_http_request_t *r,
    kroute_str_t text);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_kroute_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_kroute_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


void *
ngx_http_kroute_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_srv_conf_t  *kscf;

    kscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_srv_conf_t));
    if (kscf == NULL) {
        return NULL;
    }

    kscf->fail_timeout = NGX_CONF_UNSET_MSEC;
    kscf->ssl = NGX_CONF_UNSET;
    kscf->ssl_cache = NGX_CONF_UNSET_UINT;

    return kscf;
}


/* kroute_balancer [fail_timeout=<time>]; */

char *
ngx_http_kroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                     *value, s;
    ngx_http_upstream_server_t    *placeholder;
    ngx_http_kroute_srv_conf_t    *kscf;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);
    kscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_kroute_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_balancer\" must be the first balancer "
                           "directive of the upstream, before \"keepalive\"");
        return NGX_CONF_ERROR;
    }

    if (uscf->servers->nelts) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_balancer\" takes its peers from the "
                           "route table: remove the \"server\" lines");
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strncmp(value[1].data, "fail_timeout=", 13) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        s.data = value[1].data + 13;
        s.len = value[1].len - 13;

        kscf->fail_timeout = ngx_parse_time(&s, 0);
        if (kscf->fail_timeout == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid fail_timeout \"%V\"", &s);
            return NGX_CONF_ERROR;
        }
    }

    /*
     * nginx refuses an upstream block without servers; this entry, with no
     * addresses, is never used as a peer.
     */

    placeholder = ngx_array_push(uscf->servers);
    if (placeholder == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(placeholder, sizeof(ngx_http_upstream_server_t));
    ngx_str_set(&placeholder->name, "kroute");

    uscf->flags = NGX_HTTP_UPSTREAM_CREATE;
    uscf->peer.init_upstream = ngx_http_kroute_init_upstream;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_init_upstream(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_kroute_srv_conf_t  *kscf;

    kscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_kroute_module);

    ngx_conf_init_msec_value(kscf->fail_timeout, 5000);

    if (us->servers->nelts != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" with \"kroute_balancer\" must not "
                      "have \"server\" lines", &us->host);
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_kroute_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    const kroute_policy_t        *record;
    ngx_http_kroute_ctx_t        *ctx;
    ngx_http_kroute_srv_conf_t   *kscf;
    ngx_http_kroute_peer_data_t  *pd;
    const kroute_policy_t        *balance;

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->status) {
        /* "kroute_route" answers these before proxying; here it is too late */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: no endpoint for this request (status %i); "
                      "is \"kroute_route on\" missing in the location?",
                      ctx->status);
        return NGX_ERROR;
    }

    if (ngx_http_kroute_proxy_upstream(r, ctx) != NGX_OK
        || ngx_http_kroute_error_pages_upstream(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    pd = ngx_palloc(r->pool, sizeof(ngx_http_kroute_peer_data_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    kscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_kroute_module);

    pd->request = r;
    pd->ctx = ctx;
    pd->fail_timeout = kscf->fail_timeout;
    pd->tls_tag = 0;
    pd->tried = NULL;
    pd->tried_count = 0;
    pd->method = KROUTE_BALANCE_ROUND_ROBIN;
    pd->key = 0;
    pd->session = 0;
    pd->affinity = ngx_http_kroute_backend_policy(ctx, KROUTE_POLICY_AFFINITY);

    balance = ngx_http_kroute_backend_policy(ctx, KROUTE_POLICY_BALANCE);
    if (balance) {
        pd->method = balance->code;

        if (pd->method == KROUTE_BALANCE_HASH) {
            pd->key = ngx_http_kroute_hash_key(r,
                                   kroute_policy_str(&ctx->route, balance->a));
        }
    }

#if (NGX_HTTP_SSL)
    if (r->upstream->ssl && ctx->route.policy_count) {
        record = kroute_policy_find(ctx->route.policies,
                                    ctx->route.policy_count,
                                    KROUTE_POLICY_PROTOCOL);
        if (record) {
            pd->tls_tag = kroute_policy_fingerprint(&ctx->route, record) | 1;
        }
    }
#endif

    r->upstream->peer.data = pd;
    r->upstream->peer.get = ngx_http_kroute_get_peer;
    r->upstream->peer.free = ngx_http_kroute_free_peer;
    r->upstream->peer.tries = ctx->route.ready;

    /*
     * Retries that repeat endpoints try as often as next_upstream_tries
     * says (never without a limit: then once per endpoint, as elsewhere).
     */

    if (ctx->retry_repeat
        && r->upstream->conf->next_upstream_tries > ctx->route.ready)
    {
        r->upstream->peer.tries = r->upstream->conf->next_upstream_tries;
    }
#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_http_kroute_set_session;
    r->upstream->peer.save_session = ngx_http_kroute_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_kroute_peer_data_t  *pd = data;

    ngx_http_kroute_peer_addr_t  *addr;

    pc->cached = 0;
    pc->connection = NULL;

    if (ngx_http_kroute_table == NULL) {
        return NGX_BUSY;
    }

    if ((pd->affinity ? ngx_http_kroute_pick_session(pd)
                      : ngx_http_kroute_pick(pd))
        != NGX_OK)
    {
        return NGX_BUSY;
    }

    pd->start = ngx_current_msec;

    addr = ngx_pcalloc(pd->request->pool, sizeof(ngx_http_kroute_peer_addr_t));
    if (addr == NULL) {
        return NGX_ERROR;
    }

#if (NGX_HAVE_INET6)
    if (pd->endpoint.family == 6) {
        addr->u.sin6.sin6_family = AF_INET6;
        addr->u.sin6.sin6_port = htons(pd->endpoint.port);
        ngx_memcpy(addr->u.sin6.sin6_addr.s6_addr, pd->endpoint.address, 16);
        pc->socklen = sizeof(struct sockaddr_in6);

    } else
#endif
    {
        addr->u.sin.sin_family = AF_INET;
        addr->u.sin.sin_port = htons(pd->endpoint.port);
        ngx_memcpy(&addr->u.sin.sin_addr.s_addr, pd->endpoint.address, 4);
        pc->socklen = sizeof(struct sockaddr_in);
    }

    addr->name.data = addr->text;
    addr->name.len = ngx_sock_ntop(&addr->u.sockaddr, pc->socklen, addr->text,
                                   NGX_SOCKADDR_STRLEN, 1);

    /*
     * "keepalive" reuses a cached connection whose socklen bytes of address
     * equal the peer's; a TLS connection made with a route's own settings
     * (SNI, CA, client certificate) must go only to requests of routes with
     * the same ones. The tag after the address keeps them apart; connect()
     * ignores bytes beyond the address's own size.
     */

    if (pd->tls_tag) {
        ngx_memcpy(addr->u.bytes + pc->socklen, &pd->tls_tag,
                   sizeof(uint64_t));
        pc->socklen += sizeof(uint64_t);
    }

    pc->sockaddr = &addr->u.sockaddr;
    pc->name = &addr->name;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "kroute: peer %V, generation %uL",
                   pc->name, pd->ctx->generation);

    return NGX_OK;
}


static void
ngx_http_kroute_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_kroute_peer_data_t  *pd = data;

    size_t                      n;
    uint8_t                     bit;
    ngx_http_upstream_state_t  *us;

    if (pc->tries) {
        pc->tries--;
    }

    if (pd->method == KROUTE_BALANCE_EWMA && ngx_http_kroute_table) {
        kroute_table_observe(ngx_http_kroute_table, pd->ctx->snapshot,
                             pd->ctx->route.backend, &pd->endpoint,
                             ngx_current_msec - pd->start, ngx_current_msec);
    }

    if (state == 0) {
        return;
    }

    /* a retry may follow: it must go elsewhere */

    if (pd->tried == NULL) {
        n = (pd->ctx->route.ready + 7) / 8;

        pd->tried = ngx_pcalloc(pd->request->pool, n);
        if (pd->tried == NULL) {
            pc->tries = 0;
            return;
        }
    }

    bit = (uint8_t) (1 << (pd->endpoint.index % 8));

    if (!(pd->tried[pd->endpoint.index / 8] & bit)) {
        pd->tried[pd->endpoint.index / 8] |= bit;
        pd->tried_count++;
    }

    /* every ready endpoint failed: a repeating rule starts another round */

    if (pd->ctx->retry_repeat && pd->tried_count >= pd->ctx->route.ready) {
        ngx_memzero(pd->tried, (pd->ctx->route.ready + 7) / 8);
        pd->tried_count = 0;
    }

    us = pd->request->upstream->state;

    if ((state & NGX_PEER_FAILED)
        && us && us->connect_time == (ngx_msec_t) -1
        && pd->fail_timeout)
    {
        ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                      "kroute: cannot connect to %V, skipping it for %M ms",
                      pc->name, pd->fail_timeout);

        if (ngx_http_kroute_table) {
            kroute_table_mark_failed(ngx_http_kroute_table, &pd->endpoint,
                                     ngx_current_msec + pd->fail_timeout);
        }
    }
}


static ngx_int_t
ngx_http_kroute_pick(ngx_http_kroute_peer_data_t *pd)
{
    if (kroute_table_pick_by(ngx_http_kroute_table, pd->ctx->snapshot,
                             pd->ctx->route.backend, pd->tried,
                             ngx_current_msec, pd->method, pd->key,
                             &pd->endpoint)
        != 0)
    {
        return NGX_BUSY;
    }

    return NGX_OK;
}


/*
 * Session affinity: the endpoint the request's cookie names (persistent) or
 * its session key hashes to (balanced); a new session otherwise, whose
 * cookie the canary module's header filter sends. The cookie depends only
 * on the endpoint set, never on this worker: any worker or replica reads it
 * the same way. A retry goes elsewhere; with change-on-failure the session
 * moves there.
 */

static ngx_int_t
ngx_http_kroute_pick_session(ngx_http_kroute_peer_data_t *pd)
{
    uint64_t                number;
    ngx_str_t               name, value;
    ngx_uint_t              persistent;
    kroute_str_t            s;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *affinity;

    ctx = pd->ctx;
    affinity = pd->affinity;

    if (pd->tried == NULL) {
        s = kroute_policy_str(&ctx->route, affinity->a);
        name.data = (u_char *) s.data;
        name.len = s.len;

        persistent = affinity->code == KROUTE_AFFINITY_PERSISTENT;

        /* a balanced key of the other backend's sessions starts a new one */

        if (ngx_http_kroute_cookie(pd->request, &name, &value)
            && kroute_cookie_value_parse(value.data, value.len, &number) == 0
            && (persistent || (number & 1) == ctx->canary))
        {
            pd->session = persistent ? 0 : number;

            if (kroute_table_pick_by(ngx_http_kroute_table, ctx->snapshot,
                                     ctx->route.backend, NULL,
                                     ngx_current_msec,
                                     persistent ? KROUTE_PICK_ENDPOINT
                                                : KROUTE_BALANCE_HASH,
                                     number, &pd->endpoint)
                == 0)
            {
                return NGX_OK;
            }
        }

    } else if (!(affinity->flags & KROUTE_AFFINITY_CHANGE_ON_FAILURE)) {

        /* the session stays where it was: this request alone goes elsewhere */

        if (affinity->code == KROUTE_AFFINITY_BALANCED && pd->session) {
            return kroute_table_pick_by(ngx_http_kroute_table, ctx->snapshot,
                                        ctx->route.backend, pd->tried,
                                        ngx_current_msec, KROUTE_BALANCE_HASH,
                                        pd->session, &pd->endpoint)
                   == 0 ? NGX_OK : NGX_BUSY;
        }

        return ngx_http_kroute_pick(pd);
    }

    /* a new session (or a moved one) */

    if (affinity->code == KROUTE_AFFINITY_PERSISTENT) {
        if (ngx_http_kroute_pick(pd) != NGX_OK) {
            return NGX_BUSY;
        }

        number = pd->endpoint.id;

    } else {
        /* the canary's keys are odd, the primary's even (canary module) */

        number = (kroute_table_random(ngx_http_kroute_table) & ~(uint64_t) 1)
                 | ctx->canary;

        if (kroute_table_pick_by(ngx_http_kroute_table, ctx->snapshot,
                                 ctx->route.backend, pd->tried,
                                 ngx_current_msec, KROUTE_BALANCE_HASH, number,
                                 &pd->endpoint)
            != 0)
        {
            return NGX_BUSY;
        }

        pd->session = number;
    }

    ctx->set_cookie = 1;
    ctx->affinity = affinity;
    ctx->cookie_value = number;

    return NGX_OK;
}


/*
 * upstream-hash-by: the text with each $name replaced by the variable's
 * value (empty when unset), hashed.
 */

static uint64_t
ngx_http_kroute_hash_key(ngx_http_request_t *r, kroute_str_t text)
{
    u_char                     *buf, *p, *name, c;
    size_t                      i, start, len, size;
    ngx_str_t                   var;
    ngx_uint_t                  key;
    ngx_http_variable_value_t  *vv;

    size = text.len;
    buf = NULL;

    /* two passes: the length, then the text */

    for ( ;; ) {
        p = buf;
        len = 0;

        for (i = 0; i < text.len; /* void */) {
            if (text.data[i] != '$') {
                if (p) {
                    *p++ = text.data[i];
                }

                len++;
                i++;
                continue;
            }

            start = ++i;

            while (i < text.len) {
                c = text.data[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c >= '0' && c <= '9') || c == '_'))
                {
                    break;
                }

                i++;
            }

            if (i == start) {
                continue;
            }

            name = ngx_pnalloc(r->pool, i - start);
            if (name == NULL) {
                return 0;
            }

            var.len = i - start;
            var.data = name;
            key = ngx_hash_strlow(name, (u_char *) text.data + start, var.len);

            vv = ngx_http_get_variable(r, &var, key);
            if (vv == NULL || vv->not_found) {
                continue;
            }

            if (p) {
                p = ngx_cpymem(p, vv->data,
                               len < size ? ngx_min(vv->len, size - len) : 0);
            }

            len += vv->len;
        }

        if (buf) {
            return kroute_hash(buf, p - buf);
        }

        size = len;

        buf = ngx_pnalloc(r->pool, size ? size : 1);
        if (buf == NULL) {
            return 0;
        }
    }
}


#if (NGX_HTTP_SSL)

/*
 * TLS to pods: sessions are not reused. nginx calls set_session after it
 * made the connection's SSL and before the handshake (with
 * proxy_ssl_session_reuse / grpc_ssl_session_reuse on, their default): the
 * place for the route's own upstream TLS settings.
 */

static ngx_int_t
ngx_http_kroute_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_kroute_peer_data_t  *pd = data;

    if (pd->ctx->route.policy_count == 0) {
        return NGX_OK;
    }

    return ngx_http_kroute_protocol_tls(pd->request, pd->ctx, pc->connection);
}


static void
ngx_http_kroute_save_session(ngx_peer_connection_t *pc, void *data)
{
    return;
}

#endif
