/*
 * ngx_http_kroute_response_header_module: the route's kResponseHeader
 * records (routetable/policy/header_modifier.h: the Gateway API's
 * ResponseHeaderModifier), applied in order in a header filter, to the
 * backend's responses and nginx's own: set replaces every header of the
 * name, add sends one more, remove sends none. Names match in any case.
 *
 * A record with a backend (one backendRef's filter) applies only to the
 * requests sent to that backend.
 *
 * nginx's header filters skip list entries whose hash is 0, and write some
 * headers from fields of r->headers_out rather than from the list: Server
 * and Date (their own, when the pointer is NULL), Content-Type (a string),
 * Last-Modified (from a time when the pointer is NULL) and Location (made
 * absolute). Those fields follow each change here: a removed Server or Date
 * points to a placeholder with hash 0, so nginx adds none of its own.
 */

#include "ngx_http_kroute_module.h"


typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    offset;
} ngx_http_kroute_out_header_t;


static ngx_int_t ngx_http_kroute_response_header_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_response_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_response_header_apply(ngx_http_request_t *r,
    ngx_uint_t action, kroute_str_t name, kroute_str_t value);
static void ngx_http_kroute_response_header_remove(ngx_http_request_t *r,
    kroute_str_t name);
static ngx_table_elt_t *ngx_http_kroute_response_header_push(
    ngx_http_request_t *r, kroute_str_t name, kroute_str_t value);
static ngx_table_elt_t **ngx_http_kroute_out_pointer(ngx_http_request_t *r,
    kroute_str_t name);
static ngx_uint_t ngx_http_kroute_same_name(kroute_str_t name,
    const char *known);


static ngx_http_module_t  ngx_http_kroute_response_header_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_response_header_init,  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_response_header_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_response_header_module_ctx, /* module context */
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


/* r->headers_out's pointers to headers that are also in the list */

static ngx_http_kroute_out_header_t  ngx_http_kroute_out_headers[] = {
    { ngx_string("Server"), offsetof(ngx_http_headers_out_t, server) },
    { ngx_string("Date"), offsetof(ngx_http_headers_out_t, date) },
    { ngx_string("Content-Encoding"),
      offsetof(ngx_http_headers_out_t, content_encoding) },
    { ngx_string("Location"), offsetof(ngx_http_headers_out_t, location) },
    { ngx_string("Refresh"), offsetof(ngx_http_headers_out_t, refresh) },
    { ngx_string("Last-Modified"),
      offsetof(ngx_http_headers_out_t, last_modified) },
    { ngx_string("Content-Range"),
      offsetof(ngx_http_headers_out_t, content_range) },
    { ngx_string("Accept-Ranges"),
      offsetof(ngx_http_headers_out_t, accept_ranges) },
    { ngx_string("WWW-Authenticate"),
      offsetof(ngx_http_headers_out_t, www_authenticate) },
    { ngx_string("Expires"), offsetof(ngx_http_headers_out_t, expires) },
    { ngx_string("ETag"), offsetof(ngx_http_headers_out_t, etag) },
    { ngx_null_string, 0 }
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_kroute_response_header_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kroute_response_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_response_header_filter(ngx_http_request_t *r)
{
    uint32_t                i;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *p;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx == NULL || r != r->main || ctx->route.policy_count == 0) {
        return ngx_http_next_header_filter(r);
    }

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind == KROUTE_POLICY_RESPONSE_HEADER
            && (p->backend == KROUTE_NO_BACKEND
                || p->backend == ctx->route.backend)
            && ngx_http_kroute_response_header_apply(r, p->code,
                                   kroute_policy_str(&ctx->route, p->a),
                                   kroute_policy_str(&ctx->route, p->b))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_kroute_response_header_apply(ngx_http_request_t *r,
    ngx_uint_t action, kroute_str_t name, kroute_str_t value)
{
    ngx_table_elt_t   *h, **pp;

    /* Content-Type is one string of r->headers_out, never in the list */

    if (ngx_http_kroute_same_name(name, "Content-Type")) {
        r->headers_out.content_type_lowcase = NULL;
        r->headers_out.content_type_hash = 0;
        r->headers_out.charset.len = 0;

        if (action == KROUTE_HEADER_REMOVE) {
            r->headers_out.content_type.len = 0;
            r->headers_out.content_type_len = 0;
            return NGX_OK;
        }

        /* there is one Content-Type: add sets it too */

        r->headers_out.content_type.data = (u_char *) value.data;
        r->headers_out.content_type.len = value.len;
        r->headers_out.content_type_len = value.len;
        return NGX_OK;
    }

    if (action != KROUTE_HEADER_ADD) {
        ngx_http_kroute_response_header_remove(r, name);
    }

    if (action == KROUTE_HEADER_REMOVE) {
        return NGX_OK;
    }

    h = ngx_http_kroute_response_header_push(r, name, value);
    if (h == NULL) {
        return NGX_ERROR;
    }

    pp = ngx_http_kroute_out_pointer(r, name);

    if (pp && (*pp == NULL || (*pp)->hash == 0)) {
        *pp = h;
    }

    return NGX_OK;
}


static void
ngx_http_kroute_response_header_remove(ngx_http_request_t *r, kroute_str_t name)
{
    ngx_table_elt_t  **pp;
    kroute_str_t       none;

    ngx_http_kroute_clear_headers(&r->headers_out.headers, name.data, name.len);

    if (ngx_http_kroute_same_name(name, "Cache-Control")) {
        r->headers_out.cache_control.nelts = 0;
        return;
    }

    if (ngx_http_kroute_same_name(name, "Link")) {
        r->headers_out.link.nelts = 0;
        return;
    }

    if (ngx_http_kroute_same_name(name, "Last-Modified")) {
        r->headers_out.last_modified_time = -1;
    }

    pp = ngx_http_kroute_out_pointer(r, name);
    if (pp == NULL) {
        return;
    }

    *pp = NULL;

    /* without a pointer nginx would send a Server or Date of its own */

    if (ngx_http_kroute_same_name(name, "Server")
        || ngx_http_kroute_same_name(name, "Date"))
    {
        none.data = (const unsigned char *) "";
        none.len = 0;

        *pp = ngx_http_kroute_response_header_push(r, name, none);
        if (*pp) {
            (*pp)->hash = 0;
        }
    }
}


static ngx_table_elt_t *
ngx_http_kroute_response_header_push(ngx_http_request_t *r, kroute_str_t name,
    kroute_str_t value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    /* the snapshot stays pinned until the request pool goes */

    h->hash = 1;
    h->key.data = (u_char *) name.data;
    h->key.len = name.len;
    h->value.data = (u_char *) value.data;
    h->value.len = value.len;
    h->lowcase_key = NULL;

    return h;
}


static ngx_table_elt_t **
ngx_http_kroute_out_pointer(ngx_http_request_t *r, kroute_str_t name)
{
    ngx_http_kroute_out_header_t  *oh;

    for (oh = ngx_http_kroute_out_headers; oh->name.len; oh++) {
        if (ngx_http_kroute_same_name(name, (const char *) oh->name.data)) {
            return (ngx_table_elt_t **) ((char *) &r->headers_out + oh->offset);
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_http_kroute_same_name(kroute_str_t name, const char *known)
{
    size_t  len;

    len = ngx_strlen(known);

    return name.len == len
           && ngx_strncasecmp((u_char *) name.data, (u_char *) known, len)
              == 0;
}
