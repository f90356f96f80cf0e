/*
 * ngx_http_kroute_rewrite_module: the URI sent upstream, from the route's
 * kRewrite record (routetable/policy/rewrite.h): its template with the
 * groups the regex path captured, the query string kept (after the
 * template's own), as nginx's "rewrite ... break" does for ingress-nginx's
 * rewrite-target. Rewrite phase, after the redirect handler.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_rewrite_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_rewrite_handler(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_rewrite_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_rewrite_init,          /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_rewrite_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_rewrite_module_ctx,   /* module context */
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
ngx_http_kroute_rewrite_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_rewrite_handler);
}


static ngx_int_t
ngx_http_kroute_rewrite_handler(ngx_http_request_t *r)
{
    u_char                 *p, *end, *question;
    size_t                  len, query;
    kroute_str_t            text;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *rewrite;
    kroute_template_ctx_t   tctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.policy_count == 0 || ctx->rewritten) {
        return NGX_DECLINED;
    }

    rewrite = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                 KROUTE_POLICY_REWRITE);
    if (rewrite == NULL) {
        return NGX_DECLINED;
    }

    ctx->rewritten = 1;

    ngx_http_kroute_template_ctx(r, ctx, &tctx);
    text = kroute_policy_str(&ctx->route, rewrite->a);
    len = kroute_template_length(text, &tctx);

    /* room for "&" and the request's own arguments after the template's */

    p = ngx_pnalloc(r->pool, len + 1 + r->args.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* only the template's own '?' starts the arguments: one from the path is data */

    end = kroute_template_expand(text, &tctx, p, &query);
    question = p + query < end ? p + query : NULL;

    if (question) {
        if (r->args.len) {
            *end++ = '&';
            end = ngx_cpymem(end, r->args.data, r->args.len);
        }

        r->args.data = question + 1;
        r->args.len = end - (question + 1);
        end = question;
    }

    if (end == p) {
        *end++ = '/';
    }

    r->uri.data = p;
    r->uri.len = end - p;

    /* as "rewrite ... break": the proxy sends r->uri and r->args */

    r->valid_unparsed_uri = 0;
    r->valid_location = 0;
    r->internal = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kroute rewrite: \"%V\" args \"%V\"", &r->uri, &r->args);

    return NGX_DECLINED;
}
