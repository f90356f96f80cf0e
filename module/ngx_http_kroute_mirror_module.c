/*
 * ngx_http_kroute_mirror_module: a route's kMirror records
 * (routetable/policy/mirror.h), as ingress-nginx's mirror-target and the
 * Gateway API's RequestMirror: each request of the rule is copied, once per
 * record, as a background subrequest to the location with "kroute_mirror"
 * (an internal one in nginx.conf that proxies to $kroute_mirror_url with
 * Host $kroute_mirror_host). A record with a URL sends there; one with a
 * backend sends to one of its ready endpoints, picked by the balancer. A
 * record with a share copies only that part of the requests, drawn from the
 * worker's random numbers. Precontent phase, as nginx's own mirror module:
 * when a record has kMirrorRequestBody the request body is read first and
 * those copies carry it; the others go without a body. nginx sends the
 * client its answer without waiting for a background subrequest; the
 * mirror's answer is discarded.
 */

#include "ngx_http_kroute_module.h"


typedef struct {
    ngx_str_t                  location;     /* the kroute_mirror one */
} ngx_http_kroute_mirror_main_conf_t;

/* On the request: the phase's answer after the body is read. */
typedef struct {
    ngx_int_t                  status;
} ngx_http_kroute_mirror_ctx_t;

/* On the copy: where it goes. */
typedef struct {
    ngx_str_t                  url;
    ngx_str_t                  host;
} ngx_http_kroute_mirror_copy_t;


static ngx_int_t ngx_http_kroute_mirror_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_mirror_init(ngx_conf_t *cf);
static void *ngx_http_kroute_mirror_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_mirror(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_mirror_handler(ngx_http_request_t *r);
static void ngx_http_kroute_mirror_body_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_kroute_mirror_flags(ngx_http_kroute_ctx_t *ctx);
static ngx_int_t ngx_http_kroute_mirror_send(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_mirror_copy(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record);
static ngx_int_t ngx_http_kroute_mirror_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_http_kroute_mirror_commands[] = {

    { ngx_string("kroute_mirror"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_kroute_mirror,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_mirror_module_ctx = {
    ngx_http_kroute_mirror_add_variables,  /* preconfiguration */
    ngx_http_kroute_mirror_init,           /* postconfiguration */

    ngx_http_kroute_mirror_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_mirror_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_mirror_module_ctx,    /* module context */
    ngx_http_kroute_mirror_commands,       /* module directives */
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


static ngx_http_variable_t  ngx_http_kroute_mirror_vars[] = {

    { ngx_string("kroute_mirror_url"), NULL,
      ngx_http_kroute_mirror_variable,
      offsetof(ngx_http_kroute_mirror_copy_t, url),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_mirror_host"), NULL,
      ngx_http_kroute_mirror_variable,
      offsetof(ngx_http_kroute_mirror_copy_t, host),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_kroute_mirror_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(cf,
                                                ngx_http_kroute_mirror_vars);
}


static ngx_int_t
ngx_http_kroute_mirror_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_PRECONTENT_PHASE,
                                             ngx_http_kroute_mirror_handler);
}


static void *
ngx_http_kroute_mirror_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_mirror_main_conf_t));
}


/* kroute_mirror; in the internal exact-match location the copies go to */

static char *
ngx_http_kroute_mirror(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_kroute_mirror_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kroute_mirror_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (mmcf->location.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_mirror\" is already in location \"%V\"",
                           &mmcf->location);
        return NGX_CONF_ERROR;
    }

    if (!clcf->exact_match || !clcf->internal) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_mirror\" belongs in an \"internal\" "
                           "location with \"=\"");
        return NGX_CONF_ERROR;
    }

    mmcf->location = clcf->name;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_mirror_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     flags;
    ngx_http_kroute_ctx_t         *ctx;
    ngx_http_kroute_mirror_ctx_t  *mctx;

    /* as nginx's mirror: not for subrequests, nor for an error page */

    if (r != r->main || r->error_page || !ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    mctx = ngx_http_get_module_ctx(r, ngx_http_kroute_mirror_module);
    if (mctx) {
        return mctx->status;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* once per request, also when an error page runs the phases again */

    flags = ngx_http_kroute_mirror_flags(ctx);
    if (flags == 0 || ctx->mirrored) {
        return NGX_DECLINED;
    }

    ctx->mirrored = 1;

    if (!(flags & KROUTE_MIRROR_REQUEST_BODY)) {
        return ngx_http_kroute_mirror_send(r);
    }

    mctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kroute_mirror_ctx_t));
    if (mctx == NULL) {
        return NGX_ERROR;
    }

    mctx->status = NGX_DONE;

    ngx_http_set_ctx(r, mctx, ngx_http_kroute_mirror_module);

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_kroute_mirror_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


/* The body is read: the copy goes, and the request goes on with the phases. */

static void
ngx_http_kroute_mirror_body_handler(ngx_http_request_t *r)
{
    ngx_http_kroute_mirror_ctx_t  *mctx;

    mctx = ngx_http_get_module_ctx(r, ngx_http_kroute_mirror_module);

    mctx->status = ngx_http_kroute_mirror_send(r);

    /* the proxy must not reuse the body's buffers: the copy sends them */
    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * 0 when the route has no kMirror record; else the records' flags ORed, with
 * bit 31 set (so that records without flags still count).
 */

static ngx_uint_t
ngx_http_kroute_mirror_flags(ngx_http_kroute_ctx_t *ctx)
{
    uint32_t     i;
    ngx_uint_t   flags;

    if (ctx->status || ctx->route.policy_count == 0) {
        return 0;
    }

    flags = 0;

    for (i = 0; i < ctx->route.policy_count; i++) {
        if (ctx->route.policies[i].kind == KROUTE_POLICY_MIRROR) {
            flags |= 0x80000000 | ctx->route.policies[i].flags;
        }
    }

    return flags;
}


/* A copy for each record; the request's phase result. */

static ngx_int_t
ngx_http_kroute_mirror_send(ngx_http_request_t *r)
{
    uint32_t                             i;
    ngx_int_t                            rc;
    const kroute_policy_t               *record;
    ngx_http_kroute_ctx_t               *ctx;
    ngx_http_kroute_mirror_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_kroute_mirror_module);

    if (mmcf->location.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: mirroring needs a location with "
                      "\"kroute_mirror\"");
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_kroute_mirror_flags(ctx) == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < ctx->route.policy_count; i++) {
        record = &ctx->route.policies[i];

        if (record->kind != KROUTE_POLICY_MIRROR) {
            continue;
        }

        /* a share: this request is copied with probability value / 10^6 */

        if (record->value
            && kroute_table_random(ngx_http_kroute_table) % 1000000
               >= record->value)
        {
            continue;
        }

        rc = ngx_http_kroute_mirror_copy(r, ctx, record);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_DECLINED;
}


/* One background subrequest for `record`: NGX_OK (also when none can go). */

static ngx_int_t
ngx_http_kroute_mirror_copy(ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx,
    const kroute_policy_t *record)
{
    u_char                              *p;
    ngx_str_t                            path;
    kroute_str_t                         host;
    kroute_endpoint_t                    endpoint;
    ngx_http_request_t                  *sr;
    kroute_template_ctx_t                tctx;
    ngx_http_kroute_mirror_copy_t       *copy;
    ngx_http_kroute_mirror_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_kroute_mirror_module);

    copy = ngx_palloc(r->pool, sizeof(ngx_http_kroute_mirror_copy_t));
    if (copy == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_kroute_template_ctx(r, ctx, &tctx);

    if (ngx_http_kroute_expand(r, kroute_policy_str(&ctx->route, record->a),
                               &tctx, &path)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (record->backend == KROUTE_NO_BACKEND) {
        copy->url = path;

    } else {
        if (ctx->snapshot == NULL
            || kroute_table_pick(ngx_http_kroute_table, ctx->snapshot,
                                 record->backend, NULL, ngx_current_msec,
                                 &endpoint)
               != 0)
        {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "kroute: mirror backend has no ready endpoint");
            return NGX_OK;
        }

        /* http://ADDRESS:PORT or http://[ADDRESS]:PORT, then the path */

        copy->url.data = ngx_pnalloc(r->pool, sizeof("http://[]:65535") - 1
                                              + NGX_INET6_ADDRSTRLEN
                                              + path.len);
        if (copy->url.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(copy->url.data, "http://", sizeof("http://") - 1);

        if (endpoint.family == 4) {
            p = ngx_sprintf(p, "%ud.%ud.%ud.%ud",
                            (ngx_uint_t) endpoint.address[0],
                            (ngx_uint_t) endpoint.address[1],
                            (ngx_uint_t) endpoint.address[2],
                            (ngx_uint_t) endpoint.address[3]);
        } else {
#if (NGX_HAVE_INET6)
            *p++ = '[';
            p += ngx_inet6_ntop(endpoint.address, p, NGX_INET6_ADDRSTRLEN);
            *p++ = ']';
#else
            return NGX_OK;
#endif
        }

        p = ngx_sprintf(p, ":%ud", (ngx_uint_t) endpoint.port);
        p = ngx_cpymem(p, path.data, path.len);
        copy->url.len = p - copy->url.data;
    }

    host = kroute_policy_str(&ctx->route, record->b);
    if (host.len) {
        copy->host.data = (u_char *) host.data;
        copy->host.len = host.len;

    } else {
        copy->host = r->headers_in.server;
    }

    if (ngx_http_subrequest(r, &mmcf->location, &r->args, &sr, NULL,
                            NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sr->header_only = 1;
    sr->method = r->method;
    sr->method_name = r->method_name;

    if (!(record->flags & KROUTE_MIRROR_REQUEST_BODY)) {
        /* the proxy then sends neither a body nor a length for one */
        sr->request_body = NULL;
        sr->headers_in.content_length = NULL;
        sr->headers_in.content_length_n = -1;
        sr->headers_in.transfer_encoding = NULL;
        sr->headers_in.chunked = 0;
    }

    ngx_http_set_ctx(sr, copy, ngx_http_kroute_mirror_module);

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_mirror_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                      *s;
    ngx_http_kroute_mirror_copy_t  *copy;

    copy = r != r->main ? ngx_http_get_module_ctx(r,
                                                  ngx_http_kroute_mirror_module)
                        : NULL;

    if (copy == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) copy + data);

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}
