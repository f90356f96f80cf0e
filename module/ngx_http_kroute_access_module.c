/*
 * ngx_http_kroute_access_module: allow and deny lists of client addresses
 * (kSourceRange, routetable/policy/source_range.h), from ingress-nginx's
 * allowlist-source-range (whitelist-source-range) and denylist-source-range.
 * Access phase, the first of kroute's access handlers: a client inside the
 * rule's deny list, or outside its allow list, gets the record's status
 * (403). The address is r->connection->sockaddr, which nginx's realip module
 * has already replaced (post-read phase) when the chart trusts a proxy's
 * X-Forwarded-For or the PROXY protocol (nginx-conf/kroute/http.conf).
 * A match of the allow list returns NGX_OK, as nginx's `allow` does, so that
 * under the rule's kSatisfy record (satisfy: any, routetable/policy/satisfy.h,
 * set here on the request's copy of the location) it lets the request pass
 * without the other checks. nginx runs the access phase for the main request
 * only; after an internal redirect the route is looked up again and the check
 * repeats.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_access_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_access_handler(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_access_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_access_init,           /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_access_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_access_module_ctx,    /* module context */
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


/* kSourceRange flags (routetable/policy/source_range.h) */
#define NGX_HTTP_KROUTE_SOURCE_ALLOW  1
#define NGX_HTTP_KROUTE_SOURCE_DENY   2


static ngx_int_t
ngx_http_kroute_access_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                             ngx_http_kroute_access_handler);
}


static ngx_int_t
ngx_http_kroute_access_handler(ngx_http_request_t *r)
{
    uint32_t                   i;
    kroute_str_t               list;
    const kroute_policy_t     *p, *deny, *allow;
    ngx_http_kroute_ctx_t     *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    if (r != r->main || !ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    deny = NULL;
    allow = NULL;

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind == KROUTE_POLICY_SATISFY) {
            /*
             * satisfy any: the request's copy of the location's setting,
             * read by the access phase after this handler returns (the
             * first of kroute's access handlers), so every check that
             * follows is judged under it too.
             */
            clcf = ngx_http_kroute_core_loc_conf(r, ctx);
            if (clcf == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            clcf->satisfy = NGX_HTTP_SATISFY_ANY;
            continue;
        }

        if (p->kind != KROUTE_POLICY_SOURCE_RANGE) {
            continue;
        }

        if (p->flags == NGX_HTTP_KROUTE_SOURCE_DENY) {
            deny = p;

        } else if (p->flags == NGX_HTTP_KROUTE_SOURCE_ALLOW) {
            allow = p;
        }
    }

    if (deny == NULL && allow == NULL) {
        return NGX_DECLINED;
    }

    if (deny != NULL) {
        list = kroute_policy_str(&ctx->route, deny->a);

        if (kroute_cidr_match(list.data, list.len, r->connection->sockaddr)) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "kroute: access forbidden: client address %V is in "
                          "the rule's denylist-source-range",
                          &r->connection->addr_text);
            return deny->code;
        }
    }

    if (allow != NULL) {
        list = kroute_policy_str(&ctx->route, allow->a);

        if (!kroute_cidr_match(list.data, list.len, r->connection->sockaddr)) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "kroute: access forbidden: client address %V is "
                          "outside the rule's allowlist-source-range",
                          &r->connection->addr_text);
            return allow->code;
        }

        /* as nginx's `allow`: with satisfy any, this check lets it pass */
        return NGX_OK;
    }

    return NGX_DECLINED;
}
