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
 * With the Gateway API's flags (KROUTE_CORS_ANY_DEPTH, KROUTE_CORS_ECHO) a
 * wildcard origin covers several labels, and with credentials "*" origins,
 * methods and headers are answered with what the request asked for.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_cors_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_cors_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_cors_header_filter(ngx_http_request_t *r);
static const kroute_policy_t *ngx_http_kroute_cors_allowed(
    ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx, ngx_str_t *origin);
static ngx_int_t ngx_http_kroute_cors_set(ngx_http_request_t *r,
    const char *name, size_t name_len, u_char *value, size_t len);
static ngx_int_t ngx_http_kroute_cors_list(ngx_http_request_t *r,
    const kroute_policy_t *cors, const char *name, size_t name_len,
    const char *asked, size_t asked_len, u_char *value, size_t len);


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
    const kroute_policy_t  *cors;

    if (!ngx_http_kroute_routes(r) || r->method != NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_kroute_cors_allowed(r, ctx, &origin) == NULL) {

        /*
         * The Gateway API answers every preflight of a CORS route itself,
         * without CORS headers for an origin it does not allow;
         * ingress-nginx passes those to the backend.
         */

        if (ctx->route.policy_count == 0) {
            return NGX_DECLINED;
        }

        cors = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                  KROUTE_POLICY_CORS);

        if (cors == NULL || !(cors->flags & KROUTE_CORS_ECHO)
            || ngx_http_kroute_find_header(&r->headers_in.headers,
                   (u_char *) "Origin", sizeof("Origin") - 1) == NULL
            || ngx_http_kroute_find_header(&r->headers_in.headers,
                   (u_char *) "Access-Control-Request-Method",
                   sizeof("Access-Control-Request-Method") - 1) == NULL)
        {
            return NGX_DECLINED;
        }
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

    /* the first Origin header, as nginx's $http_origin */

    h = ngx_http_kroute_find_header(&r->headers_in.headers,
                                    (u_char *) "Origin", sizeof("Origin") - 1);

    if (cors->flags & KROUTE_CORS_ANY_ORIGIN) {
        if (h != NULL
            && (cors->flags & (KROUTE_CORS_ECHO | KROUTE_CORS_CREDENTIALS))
               == (KROUTE_CORS_ECHO | KROUTE_CORS_CREDENTIALS))
        {
            *origin = h->value;

        } else {
            ngx_str_set(origin, "*");
        }

        return cors;
    }

    if (h == NULL) {
        return NULL;
    }

    origins = kroute_policy_str(&ctx->route, cors->a);

    if (!kroute_cors_origin_match(origins.data, origins.len,
                                  h->value.data, h->value.len,
                                  (cors->flags & KROUTE_CORS_ANY_DEPTH) != 0))
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

    if (ngx_http_kroute_cors_list(r, cors, "Access-Control-Allow-Methods",
            sizeof("Access-Control-Allow-Methods") - 1,
            "Access-Control-Request-Method",
            sizeof("Access-Control-Request-Method") - 1,
            (u_char *) lists.data, first)
        != NGX_OK
        || ngx_http_kroute_cors_list(r, cors, "Access-Control-Allow-Headers",
               sizeof("Access-Control-Allow-Headers") - 1,
               "Access-Control-Request-Headers",
               sizeof("Access-Control-Request-Headers") - 1,
               (u_char *) lists.data + first + 1, second - first - 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

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
 * Access-Control-Allow-Methods or -Headers: the record's list. With the
 * Gateway API's semantics (KROUTE_CORS_ECHO) only a request that asks
 * (Access-Control-Request-Method or -Headers) gets one, an empty list none,
 * and with credentials (which browsers refuse with "*") a "*" is what the
 * request asked for.
 */

static ngx_int_t
ngx_http_kroute_cors_list(ngx_http_request_t *r, const kroute_policy_t *cors,
    const char *name, size_t name_len, const char *asked, size_t asked_len,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    if (!(cors->flags & KROUTE_CORS_ECHO)) {
        return ngx_http_kroute_cors_set(r, name, name_len, value, len);
    }

    h = ngx_http_kroute_find_header(&r->headers_in.headers,
                                    (u_char *) asked, asked_len);

    if (h == NULL || len == 0) {
        ngx_http_kroute_clear_headers(&r->headers_out.headers,
                                      (u_char *) name, name_len);
        return NGX_OK;
    }

    if (len == 1 && value[0] == '*'
        && (cors->flags & KROUTE_CORS_CREDENTIALS))
    {
        value = h->value.data;
        len = h->value.len;
    }

    return ngx_http_kroute_cors_set(r, name, name_len, value, len);
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
