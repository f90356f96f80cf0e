/*
 * ngx_http_kroute_split_module: shares a rule's requests among backends by
 * the weights of its kSplit records (routetable/policy/split.h: the Gateway
 * API's backendRefs): one record per request, with probability weight / sum,
 * from the worker's random numbers. A record without a backend (an invalid
 * backendRef) or weights that sum to 0 answer 500; otherwise the chosen
 * backend's endpoints are balanced as any rule's, and $kroute_service names
 * it. Rewrite phase, where the canary module chooses too, before the error
 * pages (a chosen backend without endpoints) and the router.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_split_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_split_handler(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_split_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_split_init,            /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_split_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_split_module_ctx,     /* module context */
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


static ngx_int_t
ngx_http_kroute_split_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_split_handler);
}


static ngx_int_t
ngx_http_kroute_split_handler(ngx_http_request_t *r)
{
    int                     chosen;
    uint32_t                backend;
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

    if (ctx->split_done || ctx->route.policy_count == 0
        || ctx->snapshot == NULL)
    {
        return NGX_DECLINED;
    }

    ctx->split_done = 1;

    if (kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                           KROUTE_POLICY_SPLIT)
        == NULL)
    {
        return NGX_DECLINED;
    }

    chosen = kroute_split_pick(ctx->route.policies, ctx->route.policy_count,
                               kroute_table_random(ngx_http_kroute_table));

    backend = chosen < 0 ? KROUTE_NO_BACKEND
                         : ctx->route.policies[chosen].backend;

    if (backend == KROUTE_NO_BACKEND
        || kroute_snapshot_backend(ctx->snapshot, backend, &info) != 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "kroute: split share without a backend");

        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return ctx->status;
    }

    ctx->route.backend = backend;
    ctx->route.ready = info.ready;
    ctx->route.service = info.service;
    ctx->status = info.ready ? 0 : NGX_HTTP_SERVICE_UNAVAILABLE;

    return NGX_DECLINED;
}
