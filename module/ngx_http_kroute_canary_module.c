/*
 * ngx_http_kroute_canary_module: sends a request to its rule's canary
 * backend when the rule's kCanary records say so (routetable/policy/
 * canary.h), as ingress-nginx's balancer.lua route_to_alternative_balancer
 * does: a session cookie of either backend first (affinity-canary-behavior
 * sticky), then the header, the cookie, the weight. Rewrite phase, after the
 * rewrite policy and before the router. Also the header filter that sends
 * the session cookie the balancer chose (kAffinity), so that a retry on
 * another endpoint sets the endpoint that answered.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_canary_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_canary_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_canary_chosen(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *records,
    uint32_t count);
static ngx_int_t ngx_http_kroute_canary_session(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, uint32_t canary);
static ngx_int_t ngx_http_kroute_session_cookie_filter(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_canary_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_canary_init,           /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_canary_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_canary_module_ctx,    /* module context */
    NULL,                                  /* module directives */
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


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_kroute_canary_init(ngx_conf_t *cf)
{
    if (ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                          ngx_http_kroute_canary_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kroute_session_cookie_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_canary_handler(ngx_http_request_t *r)
{
    uint32_t                i, canary;
    kroute_backend_t        info;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a named location or error_page runs the phase again: choose once */

    if (ctx->canary_done || ctx->route.policy_count == 0
        || ctx->snapshot == NULL)
    {
        return NGX_DECLINED;
    }

    ctx->canary_done = 1;

    canary = KROUTE_NO_BACKEND;

    for (i = 0; i < ctx->route.policy_count; i++) {
        if (ctx->route.policies[i].kind == KROUTE_POLICY_CANARY) {
            canary = ctx->route.policies[i].backend;
            break;
        }
    }

    if (canary == KROUTE_NO_BACKEND
        || !ngx_http_kroute_canary_chosen(r, ctx, ctx->route.policies + i,
                                          ctx->route.policy_count - i))
    {
        return NGX_DECLINED;
    }

    /* a canary without ready endpoints leaves the request to the primary */

    if (kroute_snapshot_backend(ctx->snapshot, canary, &info) != 0
        || info.ready == 0)
    {
        return NGX_DECLINED;
    }

    ctx->route.backend = canary;
    ctx->route.ready = info.ready;
    ctx->route.service = info.service;
    ctx->canary = 1;
    ctx->status = 0;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_kroute_canary_chosen(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *records,
    uint32_t count)
{
    uint32_t                i;
    ngx_str_t               name, value, *header;
    kroute_str_t            s, h;
    ngx_int_t               session, keyword;
    ngx_table_elt_t        *found;
    const kroute_policy_t  *p;

    session = ngx_http_kroute_canary_session(r, ctx, records[0].backend);
    if (session != NGX_DECLINED) {
        return session;
    }

    for (i = 0; i < count; i++) {
        p = &records[i];

        if (p->kind != KROUTE_POLICY_CANARY) {
            continue;
        }

        switch (p->code) {

        case KROUTE_CANARY_BY_HEADER:
            s = kroute_policy_str(&ctx->route, p->a);
            found = ngx_http_kroute_find_header(&r->headers_in.headers,
                                                s.data, s.len);
            if (found == NULL) {
                break;
            }

            header = &found->value;

            s = kroute_policy_str(&ctx->route, p->b);

            if (p->flags & KROUTE_CANARY_PATTERN) {
                h.len = header->len;
                h.data = header->data;

                if (kroute_table_match_value(ngx_http_kroute_table, s, h)) {
                    return 1;
                }

                break;
            }

            if (s.len) {
                if (header->len == s.len
                    && ngx_memcmp(header->data, s.data, s.len) == 0)
                {
                    return 1;
                }

                break;
            }

            h.len = header->len;
            h.data = header->data;
            keyword = kroute_canary_keyword(h);

            if (keyword >= 0) {
                return keyword;
            }

            break;

        case KROUTE_CANARY_BY_COOKIE:
            s = kroute_policy_str(&ctx->route, p->a);
            name.data = (u_char *) s.data;
            name.len = s.len;

            if (ngx_http_kroute_cookie(r, &name, &value) == NULL) {
                break;
            }

            h.len = value.len;
            h.data = value.data;
            keyword = kroute_canary_keyword(h);

            if (keyword >= 0) {
                return keyword;
            }

            break;

        case KROUTE_CANARY_BY_WEIGHT:
            return kroute_canary_weight(p->value,
                                        kroute_table_random(
                                                        ngx_http_kroute_table));
        }
    }

    return 0;
}


/*
 * affinity-canary-behavior sticky: a session cookie the primary's affinity
 * set keeps the request on the primary, one the canary's set keeps it on the
 * canary (the session's endpoint, or key, is still among the backend's).
 * NGX_DECLINED: no session decides.
 */

static ngx_int_t
ngx_http_kroute_canary_session(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, uint32_t canary)
{
    uint32_t                i;
    uint64_t                number;
    ngx_str_t               name, value;
    kroute_str_t            s;
    kroute_endpoint_t       endpoint;
    const kroute_policy_t  *p;

    /* legacy on the primary's or the canary's affinity: the weight decides */

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind == KROUTE_POLICY_AFFINITY
            && (p->flags & KROUTE_AFFINITY_LEGACY_CANARY))
        {
            return NGX_DECLINED;
        }
    }

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind != KROUTE_POLICY_AFFINITY
            || (p->backend != KROUTE_NO_BACKEND && p->backend != canary))
        {
            continue;
        }

        s = kroute_policy_str(&ctx->route, p->a);
        name.data = (u_char *) s.data;
        name.len = s.len;

        if (ngx_http_kroute_cookie(r, &name, &value) == NULL
            || kroute_cookie_value_parse(value.data, value.len, &number) != 0)
        {
            continue;
        }

        if (p->code == KROUTE_AFFINITY_PERSISTENT) {
            if (kroute_table_pick_by(ngx_http_kroute_table, ctx->snapshot,
                                     p->backend == KROUTE_NO_BACKEND
                                     ? ctx->route.backend : canary,
                                     NULL, ngx_current_msec,
                                     KROUTE_PICK_ENDPOINT, number, &endpoint)
                != 0)
            {
                continue;
            }

        } else if ((number & 1) != (p->backend == canary)) {
            /* balanced: the balancer makes the canary's session keys odd */
            continue;
        }

        return p->backend == canary;
    }

    return NGX_DECLINED;
}


ngx_str_t *
ngx_http_kroute_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies, name, value)
        == NGX_DECLINED)
    {
        return NULL;
    }

    return value;
}


const kroute_policy_t *
ngx_http_kroute_backend_policy(ngx_http_kroute_ctx_t *ctx, uint16_t kind)
{
    uint32_t                i;
    const kroute_policy_t  *p;

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind != kind) {
            continue;
        }

        if (ctx->canary ? p->backend == ctx->route.backend
                        : p->backend == KROUTE_NO_BACKEND)
        {
            return p;
        }
    }

    return NULL;
}


/*
 * Set-Cookie: <name>=<value><attributes>[; Expires=...][; Secure]
 * [; SameSite=None] (the last one only for clients that accept it, when
 * conditional).
 */

static ngx_int_t
ngx_http_kroute_session_cookie_filter(ngx_http_request_t *r)
{
    u_char                 *p;
    size_t                  len;
    kroute_str_t            name, attributes, ua;
    ngx_uint_t              secure, same_site_none;
    ngx_table_elt_t        *h;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *affinity;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx == NULL || !ctx->set_cookie || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx->set_cookie = 0;
    affinity = ctx->affinity;

    name = kroute_policy_str(&ctx->route, affinity->a);
    attributes = kroute_policy_str(&ctx->route, affinity->b);
    secure = (affinity->flags & KROUTE_AFFINITY_SECURE)
             || ngx_http_kroute_https(r, ctx);

    same_site_none = 0;

    if (affinity->flags & KROUTE_AFFINITY_CONDITIONAL_SAMESITE_NONE) {
        ua.len = 0;
        ua.data = NULL;

        if (r->headers_in.user_agent) {
            ua.len = r->headers_in.user_agent->value.len;
            ua.data = r->headers_in.user_agent->value.data;
        }

        same_site_none = kroute_same_site_none_compatible(ua);
    }

    len = name.len + 1 + KROUTE_COOKIE_VALUE_LEN + attributes.len
          + sizeof("; Expires=") - 1 + sizeof("Thu, 01-Jan-1970 00:00:00 GMT")
          + sizeof("; Secure") - 1 + sizeof("; SameSite=None") - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_cpymem(p, name.data, name.len);
    *p++ = '=';
    kroute_cookie_value_format(ctx->cookie_value, p);
    p += KROUTE_COOKIE_VALUE_LEN;
    p = ngx_cpymem(p, attributes.data, attributes.len);

    if (affinity->value) {
        p = ngx_cpymem(p, "; Expires=", sizeof("; Expires=") - 1);
        p = ngx_http_cookie_time(p, ngx_time() + (time_t) affinity->value);
    }

    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    if (same_site_none) {
        p = ngx_cpymem(p, "; SameSite=None", sizeof("; SameSite=None") - 1);
    }

    h->value.len = p - h->value.data;

    return ngx_http_next_header_filter(r);
}
