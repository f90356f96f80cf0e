/*
 * ngx_http_kroute_server_name_module: what a TLS request's server name (SNI)
 * allows, before anything else of its route applies.
 *
 * - In a scope with HTTPS listener names (a Gateway's, routetable/model.h),
 *   a request whose Host selects another listener than its SNI did was
 *   misdirected (HTTP/2 reuses a connection for every name its certificate
 *   covers): it is answered 421, so the client opens a connection for that
 *   name. This holds for hosts without routes too.
 * - A host with kServerName records (routetable/policy/server_name.h) serves
 *   TLS requests only over connections whose SNI one of its patterns covers;
 *   any other TLS request for it is answered 404, as for a host without
 *   routes (a Gateway's listener in the shared scope, where Gateways are not
 *   told apart).
 *
 * Plain HTTP and TLS without SNI pass. The first of kroute's rewrite-phase
 * handlers (the last module in module/config): no other record of the host or
 * its rule applies to a request it refuses, and nothing is proxied.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_server_name_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_server_name_handler(ngx_http_request_t *r);


static ngx_http_module_t  ngx_http_kroute_server_name_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_server_name_init,      /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_server_name_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_server_name_module_ctx, /* module context */
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
ngx_http_kroute_server_name_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                    ngx_http_kroute_server_name_handler);
}


static ngx_int_t
ngx_http_kroute_server_name_handler(ngx_http_request_t *r)
{
#if (NGX_HTTP_SSL)
    size_t                  len;
    const char             *name;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r) || r->connection->ssl == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the shared scope has no listener names: Ingress hosts cost no more */

    if (ctx->snapshot == NULL
        || (ctx->scope == 0 && ctx->route.host_policy_count == 0))
    {
        return NGX_DECLINED;
    }

    name = SSL_get_servername(r->connection->ssl->connection,
                              TLSEXT_NAMETYPE_host_name);
    if (name == NULL || name[0] == '\0') {
        return NGX_DECLINED;
    }

    len = ngx_strlen(name);

    if (kroute_snapshot_misdirected(ctx->snapshot, ctx->scope,
                                    (const u_char *) name, len,
                                    r->headers_in.server.data,
                                    r->headers_in.server.len))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "kroute: host \"%V\" is another listener's than TLS "
                      "name \"%*s\": misdirected", &r->headers_in.server,
                      len, name);

        return NGX_HTTP_MISDIRECTED_REQUEST;
    }

    if (ctx->route.host_policy_count == 0
        || kroute_server_name_allowed(&ctx->route, (const u_char *) name, len))
    {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kroute: host \"%V\" is not served over TLS name \"%*s\"",
                  &r->headers_in.server, len, name);

    return NGX_HTTP_NOT_FOUND;

#else
    return NGX_DECLINED;
#endif
}
