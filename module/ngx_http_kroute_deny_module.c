/*
 * ngx_http_kroute_deny_module: a rule with a kDeny record
 * (routetable/policy/deny.h) answers its status (503) to every request. The
 * agent writes one when an access annotation of the rule's Ingress cannot be
 * applied (a bad CIDR, a missing Secret, a bad auth URL): access policies
 * fail closed. The first of kroute's rewrite-phase handlers (the last module
 * in module/config), so no other policy answers for such a rule.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_deny_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_deny_handler(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_deny_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_deny_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_deny_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_deny_module_ctx,      /* module context */
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
ngx_http_kroute_deny_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_deny_handler);
}


static ngx_int_t
ngx_http_kroute_deny_handler(ngx_http_request_t *r)
{
    kroute_str_t            why;
    const kroute_policy_t  *deny;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    deny = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                              KROUTE_POLICY_DENY);
    if (deny == NULL) {
        return NGX_DECLINED;
    }

    why = kroute_policy_str(&ctx->route, deny->a);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kroute: denied, the rule's access policy cannot be "
                  "applied: %*s", why.len, why.data);

    return deny->code;
}
