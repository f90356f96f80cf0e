/*
 * ngx_http_kroute_proxy_module: the location-wide proxy settings a route's
 * kProxySetting records override (routetable/policy/proxy_setting.h), for
 * that route's requests only. Request body settings (proxy-body-size,
 * client-body-buffer-size, proxy-request-buffering) in the rewrite phase,
 * before the body is read, on a per-request copy of the core location conf;
 * upstream settings (timeouts, proxy-next-upstream, buffers) from the
 * balancer's init_peer, on a per-request copy of the upstream conf, after the
 * proxy module chose it and before the connect. docs/module.md says why.
 *
 * nginx compares Content-Length with client_max_body_size when it picks the
 * location, before any rewrite-phase handler: kroute's locations set
 * client_max_body_size 0 and "kroute_client_max_body_size" the default limit,
 * which this module enforces (the rule's own, else the default).
 */

#include "ngx_http_kroute_module.h"


typedef struct {
    off_t                  client_max_body_size;
} ngx_http_kroute_proxy_loc_conf_t;


static void *ngx_http_kroute_proxy_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_proxy_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_kroute_proxy_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_proxy_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_kroute_proxy_next_upstream(uint64_t bits);


static ngx_command_t  ngx_http_kroute_proxy_commands[] = {

    { ngx_string("kroute_client_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kroute_proxy_loc_conf_t, client_max_body_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_proxy_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_proxy_init,            /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_kroute_proxy_create_loc_conf, /* create location configuration */
    ngx_http_kroute_proxy_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_proxy_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_proxy_module_ctx,     /* module context */
    ngx_http_kroute_proxy_commands,        /* module directives */
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


/* kroute's proxy-next-upstream bits to nginx's */
static const ngx_uint_t  ngx_http_kroute_proxy_conditions[][2] = {
    { KROUTE_NEXT_ERROR, NGX_HTTP_UPSTREAM_FT_ERROR },
    { KROUTE_NEXT_TIMEOUT, NGX_HTTP_UPSTREAM_FT_TIMEOUT },
    { KROUTE_NEXT_INVALID_HEADER, NGX_HTTP_UPSTREAM_FT_INVALID_HEADER },
    { KROUTE_NEXT_HTTP_500, NGX_HTTP_UPSTREAM_FT_HTTP_500 },
    { KROUTE_NEXT_HTTP_502, NGX_HTTP_UPSTREAM_FT_HTTP_502 },
    { KROUTE_NEXT_HTTP_503, NGX_HTTP_UPSTREAM_FT_HTTP_503 },
    { KROUTE_NEXT_HTTP_504, NGX_HTTP_UPSTREAM_FT_HTTP_504 },
    { KROUTE_NEXT_HTTP_403, NGX_HTTP_UPSTREAM_FT_HTTP_403 },
    { KROUTE_NEXT_HTTP_404, NGX_HTTP_UPSTREAM_FT_HTTP_404 },
    { KROUTE_NEXT_HTTP_429, NGX_HTTP_UPSTREAM_FT_HTTP_429 },
    { KROUTE_NEXT_NON_IDEMPOTENT, NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT },
    { KROUTE_NEXT_OFF, NGX_HTTP_UPSTREAM_FT_OFF }
};


static void *
ngx_http_kroute_proxy_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_proxy_loc_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_kroute_proxy_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->client_max_body_size = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_kroute_proxy_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kroute_proxy_loc_conf_t  *prev = parent;
    ngx_http_kroute_proxy_loc_conf_t  *conf = child;

    /* unset: nginx's own client_max_body_size is the default limit */
    ngx_conf_merge_off_value(conf->client_max_body_size,
                             prev->client_max_body_size, NGX_CONF_UNSET);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_proxy_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_proxy_handler);
}


/*
 * Rewrite phase: the body limit (the rule's, else kroute_client_max_body_size)
 * and how the body is read. Runs again, with the same result, when the
 * request moves to a named location (its core conf is copied afresh there).
 */

static ngx_int_t
ngx_http_kroute_proxy_handler(ngx_http_request_t *r)
{
    off_t                              limit, buffer_size;
    uint32_t                           i;
    ngx_uint_t                         no_buffering;
    ngx_http_kroute_ctx_t             *ctx;
    const kroute_policy_t             *p;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_kroute_proxy_loc_conf_t  *plcf;

    if (r != r->main || !ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_kroute_proxy_module);

    limit = plcf->client_max_body_size;
    buffer_size = NGX_CONF_UNSET;
    no_buffering = 0;

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind != KROUTE_POLICY_PROXY_SETTING) {
            continue;
        }

        switch (p->code) {

        case KROUTE_PROXY_BODY_SIZE:
            limit = (off_t) p->value;
            break;

        case KROUTE_PROXY_BODY_BUFFER_SIZE:
            buffer_size = (off_t) p->value;
            break;

        case KROUTE_PROXY_REQUEST_BUFFERING:
            no_buffering = (p->value == 0);
            break;
        }
    }

    if (limit == NGX_CONF_UNSET && buffer_size == NGX_CONF_UNSET
        && !no_buffering)
    {
        return NGX_DECLINED;
    }

    /* as nginx's own check: not again for a body already being discarded */

    if (limit > 0 && !r->discard_body
        && r->headers_in.content_length_n > limit)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client intended to send too large body: %O bytes",
                      r->headers_in.content_length_n);

        r->expect_tested = 1;
        (void) ngx_http_discard_request_body(r);

        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        /* no body: nothing else to apply */
        return NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /*
     * A chunked body (also HTTP/2 without Content-Length) is counted while it
     * is read, against the core conf's client_max_body_size.
     */

    if ((limit != NGX_CONF_UNSET && r->headers_in.chunked
         && limit != clcf->client_max_body_size)
        || (buffer_size != NGX_CONF_UNSET
            && (size_t) buffer_size != clcf->client_body_buffer_size))
    {
        clcf = ngx_http_kroute_core_loc_conf(r, ctx);
        if (clcf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (limit != NGX_CONF_UNSET) {
            clcf->client_max_body_size = limit;
        }

        if (buffer_size != NGX_CONF_UNSET) {
            clcf->client_body_buffer_size = (size_t) buffer_size;
        }
    }

    /*
     * As proxy_request_buffering off: nginx's proxy handler only ever turns
     * buffering off. A chunked body is streamed only over HTTP/1.1, which
     * nginx.conf's proxy_http_version is unless a kProtocol record of the
     * rule chooses otherwise; then nginx buffers it, as it does itself.
     */

    if (no_buffering
        && (!r->headers_in.chunked
            || kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                  KROUTE_POLICY_PROTOCOL)
               == NULL))
    {
        r->request_body_no_buffering = 1;
    }

    return NGX_DECLINED;
}


/*
 * The balancer's init_peer: after the proxy module set u->conf and
 * u->buffering, before nginx caps the tries with next_upstream_tries and
 * connects.
 */

ngx_int_t
ngx_http_kroute_proxy_upstream(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    size_t                     size;
    uint32_t                   i;
    ngx_uint_t                 buffers;
    const kroute_policy_t     *p;
    ngx_http_upstream_conf_t  *conf;

    conf = NULL;
    buffers = 0;
    ctx->retry_repeat = 0;

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind != KROUTE_POLICY_PROXY_SETTING) {
            continue;
        }

        switch (p->code) {
        case KROUTE_PROXY_BODY_SIZE:
        case KROUTE_PROXY_BODY_BUFFER_SIZE:
        case KROUTE_PROXY_REQUEST_BUFFERING:
            continue;
        }

        if (conf == NULL) {
            conf = ngx_http_kroute_upstream_conf(r, ctx);
            if (conf == NULL) {
                return NGX_ERROR;
            }
        }

        switch (p->code) {

        case KROUTE_PROXY_CONNECT_TIMEOUT:
            conf->connect_timeout = (ngx_msec_t) p->value;
            break;

        case KROUTE_PROXY_READ_TIMEOUT:
            conf->read_timeout = (ngx_msec_t) p->value;
            break;

        case KROUTE_PROXY_SEND_TIMEOUT:
            conf->send_timeout = (ngx_msec_t) p->value;
            break;

        case KROUTE_PROXY_NEXT_UPSTREAM:
            conf->next_upstream = ngx_http_kroute_proxy_next_upstream(p->value);
            ctx->retry_repeat = (p->value & KROUTE_NEXT_REPEAT) != 0;
            break;

        case KROUTE_PROXY_NEXT_UPSTREAM_TRIES:
            conf->next_upstream_tries = (ngx_uint_t) p->value;
            break;

        case KROUTE_PROXY_NEXT_UPSTREAM_TIMEOUT:
            conf->next_upstream_timeout = (ngx_msec_t) p->value;
            break;

        case KROUTE_PROXY_BUFFERING:
            /* only proxy_pass buffers (it made the pipe); grpc_pass never */
            if (r->upstream->pipe != NULL) {
                conf->buffering = (p->value != 0);
                r->upstream->buffering = conf->buffering;
            }
            break;

        case KROUTE_PROXY_BUFFER_SIZE:
            conf->buffer_size = (size_t) p->value;
            conf->bufs.size = (size_t) p->value;
            buffers = 1;
            break;

        case KROUTE_PROXY_BUFFERS_NUMBER:
            conf->bufs.num = (ngx_int_t) p->value;
            buffers = 1;
            break;

        case KROUTE_PROXY_MAX_TEMP_FILE_SIZE:
            conf->max_temp_file_size = (size_t) p->value;
            buffers = 1;
            break;
        }
    }

    if (buffers) {
        /* what nginx's proxy module derives from the buffers at -t */

        size = ngx_max(conf->buffer_size, conf->bufs.size);

        conf->busy_buffers_size = ngx_min(2 * size,
                                          (size_t) (conf->bufs.num - 1)
                                          * conf->bufs.size);
        if (conf->busy_buffers_size < size) {
            conf->busy_buffers_size = size;
        }

        conf->temp_file_write_size = 2 * size;

        if (conf->max_temp_file_size != 0 && conf->max_temp_file_size < size)
        {
            conf->max_temp_file_size = size;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_kroute_proxy_next_upstream(uint64_t bits)
{
    ngx_uint_t  i, mask;

    mask = NGX_CONF_BITMASK_SET;

    for (i = 0; i < sizeof(ngx_http_kroute_proxy_conditions)
                    / sizeof(ngx_http_kroute_proxy_conditions[0]); i++)
    {
        if (bits & ngx_http_kroute_proxy_conditions[i][0]) {
            mask |= ngx_http_kroute_proxy_conditions[i][1];
        }
    }

    return mask;
}
