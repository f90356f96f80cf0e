/*
 * ngx_http_kroute_headers_module: request headers sent upstream from the
 * route's records (routetable/policy/headers.h), as variables nginx.conf's
 * proxy_set_header lines use:
 *   $kroute_upstream_host     the Host header: the kUpstreamHost record
 *                             (upstream-vhost), else the Host the client
 *                             sent, else the server name
 *   $kroute_forwarded_prefix  X-Forwarded-Prefix: the kForwardedPrefix
 *                             record (x-forwarded-prefix), else empty, so
 *                             nginx sends no such header
 *   $kroute_scheme            X-Forwarded-Proto: https or http, the
 *                             forwarded one when the table trusts it
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_headers_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_upstream_host_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_scheme_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_set_value(ngx_http_variable_value_t *v,
    const u_char *data, size_t len);


static ngx_http_module_t  ngx_http_kroute_headers_module_ctx = {
    ngx_http_kroute_headers_add_variables, /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_headers_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_headers_module_ctx,   /* module context */
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


static ngx_http_variable_t  ngx_http_kroute_headers_vars[] = {

    { ngx_string("kroute_upstream_host"), NULL,
      ngx_http_kroute_upstream_host_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_forwarded_prefix"), NULL,
      ngx_http_kroute_record_variable, KROUTE_POLICY_FORWARDED_PREFIX,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_scheme"), NULL, ngx_http_kroute_scheme_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_kroute_headers_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(cf,
                                                ngx_http_kroute_headers_vars);
}


/* The record of a kind on this request's rule, or NULL. */

static const kroute_policy_t *
ngx_http_kroute_headers_record(ngx_http_request_t *r, uint16_t kind,
    ngx_http_kroute_ctx_t **ctxp)
{
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);
    *ctxp = ctx;

    if (ctx == NULL || ctx->route.policy_count == 0) {
        return NULL;
    }

    return kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                              kind);
}


static ngx_int_t
ngx_http_kroute_upstream_host_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    kroute_str_t            s;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *record;

    record = ngx_http_kroute_headers_record(r, KROUTE_POLICY_UPSTREAM_HOST,
                                            &ctx);
    if (record) {
        s = kroute_policy_str(&ctx->route, record->a);
        return ngx_http_kroute_set_value(v, s.data, s.len);
    }

    if (r->headers_in.host && r->headers_in.host->value.len) {
        return ngx_http_kroute_set_value(v, r->headers_in.host->value.data,
                                         r->headers_in.host->value.len);
    }

    if (r->headers_in.server.len) {
        return ngx_http_kroute_set_value(v, r->headers_in.server.data,
                                         r->headers_in.server.len);
    }

    v->not_found = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    kroute_str_t            s;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *record;

    record = ngx_http_kroute_headers_record(r, (uint16_t) data, &ctx);
    if (record == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = kroute_policy_str(&ctx->route, record->a);

    return ngx_http_kroute_set_value(v, s.data, s.len);
}


static ngx_int_t
ngx_http_kroute_scheme_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ngx_http_kroute_https(r, ctx)) {
        return ngx_http_kroute_set_value(v, (u_char *) "https", 5);
    }

    return ngx_http_kroute_set_value(v, (u_char *) "http", 4);
}


/* The snapshot stays pinned until the request pool is destroyed. */

static ngx_int_t
ngx_http_kroute_set_value(ngx_http_variable_value_t *v, const u_char *data,
    size_t len)
{
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) data;

    return NGX_OK;
}
