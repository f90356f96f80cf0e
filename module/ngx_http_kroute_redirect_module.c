/*
 * ngx_http_kroute_redirect_module: answers a request with the redirect its
 * route's kRedirect records ask for (routetable/policy/redirect.h): the
 * host's records first (app-root, the www redirect), then the rule's in
 * order (permanent or temporal redirect, then the redirect to https://), as
 * ingress-nginx's server-level rewrites, location returns and Lua redirect
 * run. Rewrite phase, before the rewrite and router handlers.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_redirect_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_redirect_handler(ngx_http_request_t *r);
static const kroute_policy_t *ngx_http_kroute_redirect_applies(
    ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx,
    const kroute_policy_t *policies, uint32_t count);
static ngx_int_t ngx_http_kroute_redirect_send(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *redirect);


static ngx_http_module_t  ngx_http_kroute_redirect_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_redirect_init,         /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_redirect_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_redirect_module_ctx,  /* module context */
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
ngx_http_kroute_redirect_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_redirect_handler);
}


static ngx_int_t
ngx_http_kroute_redirect_handler(ngx_http_request_t *r)
{
    const kroute_policy_t  *redirect;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.host_policy_count == 0 && ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    redirect = ngx_http_kroute_redirect_applies(r, ctx,
                                                ctx->route.host_policies,
                                                ctx->route.host_policy_count);
    if (redirect == NULL) {
        redirect = ngx_http_kroute_redirect_applies(r, ctx,
                                                    ctx->route.policies,
                                                    ctx->route.policy_count);
    }

    if (redirect == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_kroute_redirect_send(r, ctx, redirect);
}


static const kroute_policy_t *
ngx_http_kroute_redirect_applies(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *policies,
    uint32_t count)
{
    uint32_t  i;

    for (i = 0; i < count; i++) {
        if (policies[i].kind != KROUTE_POLICY_REDIRECT) {
            continue;
        }

        if ((policies[i].flags & KROUTE_REDIRECT_ONLY_ROOT)
            && !(r->uri.len == 1 && r->uri.data[0] == '/'))
        {
            continue;
        }

        if ((policies[i].flags & KROUTE_REDIRECT_ONLY_PLAIN_HTTP)
            && ngx_http_kroute_https(r, ctx))
        {
            continue;
        }

        return &policies[i];
    }

    return NULL;
}


static ngx_int_t
ngx_http_kroute_redirect_send(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *redirect)
{
    ngx_str_t               value;
    kroute_template_ctx_t   tctx;

    ngx_http_kroute_template_ctx(r, ctx, &tctx);
    tctx.trim_trailing_slash =
        (redirect->flags & KROUTE_REDIRECT_TRIM_TRAILING_SLASH) != 0;

    /* a decoded %0D%0A in $uri or a group must not end the header line */
    tctx.escape_path = 1;

    if (ngx_http_kroute_expand(r, kroute_policy_str(&ctx->route, redirect->a),
                               &tctx, &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_kroute_send_location(r, redirect->code, &value);
}
