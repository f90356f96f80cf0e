/*
 * ngx_http_kroute_cors_module: CORS from the route's kCors record
 * (routetable/policy/cors.h), as ingress-nginx's nginx.tmpl CORS block does
 * it. A request is allowed when the record allows any origin ("*": every
 * request, with or without an Origin header) or its Origin header matches
 * one of the record's origins. Rewrite phase (after deny): an allowed
 * OPTIONS request is a preflight and is answered 204 here, before
 * authentication. A header filter adds Access-Control-Allow-Origin (the
 * request's Origin, or "*"), -Allow-Credentials: true (when the record says
 * so), -Allow-Methods, -Allow-Headers, -Expose-Headers (when not empty) and
 * -Max-Age to every response to an allowed request, replacing the backend's
 * own headers of those names; any other request's responses pass unchanged.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_cors_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_cors_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_cors_header_filter(ngx_http_request_t *r);
static const kroute_policy_t *ngx_http_kroute_cors_allowed(
    ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx, ngx_str_t *origin);
static ngx_int_t ngx_http_kroute_cors_set(ngx_http_request_t *r,
    const char *name, size_t name_len, u_char *value, size_t len);


static ngx_http_module_t  ngx_http_kroute_cors_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_cors_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_cors_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_cors_module_ctx,      /* module context */
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
ngx_http_kroute_cors_init(ngx_conf_t *cf)
{
    if (ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                          ngx_http_kroute_cors_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kroute_cors_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_cors_handler(ngx_http_request_t *r)
{
    ngx_str_t               origin;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r) || r->method != NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_kroute_cors_allowed(r, ctx, &origin) == NULL) {
        return NGX_DECLINED;
    }

    /* the preflight: the header filter adds the CORS headers */

    r->headers_out.content_length_n = 0;

    return NGX_HTTP_NO_CONTENT;
}


/* The request's kCors record when it allows the request, and its origin. */

static const kroute_policy_t *
ngx_http_kroute_cors_allowed(ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx,
    ngx_str_t *origin)
{
    kroute_str_t            origins;
    ngx_table_elt_t        *h;
    const kroute_policy_t  *cors;

    if (ctx->route.policy_count == 0) {
        return NULL;
    }

    cors = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                              KROUTE_POLICY_CORS);
    if (cors == NULL) {
        return NULL;
    }

    if (cors->flags & KROUTE_CORS_ANY_ORIGIN) {
        ngx_str_set(origin, "*");
        return cors;
    }

    /* the first Origin header, as nginx's $http_origin */

    h = ngx_http_kroute_find_header(&r->headers_in.headers,
                                    (u_char *) "Origin", sizeof("Origin") - 1);
    if (h == NULL) {
        return NULL;
    }

    origins = kroute_policy_str(&ctx->route, cors->a);

    if (!kroute_cors_origin_match(origins.data, origins.len,
                                  h->value.data, h->value.len))
    {
        return NULL;
    }

    *origin = h->value;

    return cors;
}


static ngx_int_t
ngx_http_kroute_cors_header_filter(ngx_http_request_t *r)
{
    u_char                 *p;
    size_t                  first, second;
    ngx_str_t               origin;
    kroute_str_t            lists;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *cors;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    cors = ngx_http_kroute_cors_allowed(r, ctx, &origin);
    if (cors == NULL) {
        return ngx_http_next_header_filter(r);
    }

    /* b: "methods\nheaders\nexpose" (the agent checked it) */

    lists = kroute_policy_str(&ctx->route, cors->b);

    p = memchr(lists.data, '\n', lists.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    first = p - lists.data;

    p = memchr(p + 1, '\n', lists.len - first - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    second = p - lists.data;

#define KROUTE_CORS_SET(name, value, len)                                     \
    if (ngx_http_kroute_cors_set(r, name, sizeof(name) - 1,                   \
                                 (u_char *) (value), len)                     \
        != NGX_OK)                                                            \
    {                                                                         \
        return NGX_ERROR;                                                     \
    }

    KROUTE_CORS_SET("Access-Control-Allow-Origin", origin.data, origin.len);

    if (cors->flags & KROUTE_CORS_CREDENTIALS) {
        KROUTE_CORS_SET("Access-Control-Allow-Credentials", "true", 4);
    }

    KROUTE_CORS_SET("Access-Control-Allow-Methods", lists.data, first);
    KROUTE_CORS_SET("Access-Control-Allow-Headers", lists.data + first + 1,
                    second - first - 1);

    if (second + 1 < lists.len) {
        KROUTE_CORS_SET("Access-Control-Expose-Headers",
                        lists.data + second + 1, lists.len - second - 1);
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    KROUTE_CORS_SET("Access-Control-Max-Age", p,
                    (size_t) (ngx_sprintf(p, "%uL", cors->value) - p));

#undef KROUTE_CORS_SET

    return ngx_http_next_header_filter(r);
}


/*
 * Sets a response header as headers-more's more_set_headers does: the
 * backend's headers of that name go, this one is added. The value points
 * into the snapshot the request has pinned or into the request's pool.
 */

static ngx_int_t
ngx_http_kroute_cors_set(ngx_http_request_t *r, const char *name,
    size_t name_len, u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    ngx_http_kroute_clear_headers(&r->headers_out.headers, (u_char *) name,
                                  name_len);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = name_len;
    h->key.data = (u_char *) name;
    h->value.len = len;
    h->value.data = value;

    return NGX_OK;
}
