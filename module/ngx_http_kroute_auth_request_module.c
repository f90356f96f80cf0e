/*
 * ngx_http_kroute_auth_request_module: a route's kExternalAuth records
 * (routetable/policy/external_auth.h), as ingress-nginx's auth-url, in the
 * access phase, modelled on nginx's auth_request module. The main request
 * waits for a subrequest without body to the location with
 * "kroute_auth_request" (an internal one in nginx.conf that proxies to
 * $kroute_auth_url). The auth answer decides:
 *   2xx: the request goes on; the headers auth-response-headers names
 *        replace the client's of the same names on the upstream request;
 *   401: to the client with the auth service's WWW-Authenticate, or a 302
 *        to the signin URL when the route has one;
 *   403: to the client;
 *   anything else (5xx, not HTTP, timeout, refused): 500.
 * The answer's Set-Cookie goes to the client on 2xx/3xx responses (as
 * nginx's add_header), or with every status for auth-always-set-cookie.
 * With auth-cache-key, answers are kept in shared memory of all workers
 * (kroute_auth_cache size): statuses and times as auth-cache-duration says;
 * when the zone is full, the least recently used answers make room, and an
 * answer that still does not fit is not cached.
 */

#include "ngx_http_kroute_module.h"


#define NGX_HTTP_KROUTE_AUTH_HEADER_MAX  4096


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;       /* most recently used first */
} ngx_http_kroute_auth_cache_sh_t;

typedef struct {
    ngx_http_kroute_auth_cache_sh_t  *sh;
    ngx_slab_pool_t                  *shpool;
} ngx_http_kroute_auth_cache_t;

/* A cached answer: the key, then its headers (see auth_answer_pack). */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the key's hash */
    ngx_queue_t                   queue;
    time_t                        expires;
    ngx_uint_t                    status;
    size_t                        key_len;
    size_t                        data_len;
    u_char                        data[1];
} ngx_http_kroute_auth_cache_node_t;

typedef struct {
    ngx_str_t                     location;    /* kroute_auth_request's */
    ngx_shm_zone_t               *cache;       /* kroute_auth_cache */
} ngx_http_kroute_auth_main_conf_t;

/* The auth answer's headers this module uses. */
typedef struct {
    ngx_str_t                     key;
    ngx_str_t                     value;
} ngx_http_kroute_auth_header_t;

/* Shared by the main request and its subrequest. */
typedef struct {
    unsigned                      done:1;      /* the answer is in */
    unsigned                      decided:1;   /* result is set */
    unsigned                      always_cookie:1;
    /* as nginx's proxy_cache: not an answer with Set-Cookie or no-cache */
    unsigned                      uncacheable:1;
    ngx_int_t                     result;      /* the phase's answer, once done */
    ngx_uint_t                    status;      /* the auth service's */
    ngx_http_request_t           *subrequest;
    const kroute_policy_t        *request;     /* the record parts */
    const kroute_policy_t        *signin;
    const kroute_policy_t        *headers;
    const kroute_policy_t        *redirect;
    const kroute_policy_t        *cache;
    kroute_str_t                  header_list; /* auth-response-headers */
    ngx_str_t                     cache_key;   /* "" without a cache */
    /* what the subrequest's variables give */
    ngx_str_t                     url;
    ngx_str_t                     host;
    ngx_str_t                     method;
    ngx_str_t                     original_uri;
    ngx_str_t                     scheme;
    ngx_str_t                     request_redirect;
    ngx_array_t                   answer;      /* ngx_http_kroute_auth_header_t */
} ngx_http_kroute_auth_ctx_t;


static ngx_int_t ngx_http_kroute_auth_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_auth_init(ngx_conf_t *cf);
static void *ngx_http_kroute_auth_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_auth_location(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_kroute_auth_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_auth_cache_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_kroute_auth_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_auth_prepare(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_http_kroute_auth_ctx_t *actx);
static ngx_int_t ngx_http_kroute_auth_send(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static ngx_int_t ngx_http_kroute_auth_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_kroute_auth_decide(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static ngx_int_t ngx_http_kroute_auth_pass_headers(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static ngx_int_t ngx_http_kroute_auth_signin(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static ngx_uint_t ngx_http_kroute_auth_listed(kroute_str_t list,
    ngx_str_t *name);
static ngx_int_t ngx_http_kroute_auth_cache_key(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_http_kroute_auth_ctx_t *actx);
static ngx_int_t ngx_http_kroute_auth_cache_lookup(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static void ngx_http_kroute_auth_cache_store(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx);
static time_t ngx_http_kroute_auth_cache_seconds(kroute_str_t durations,
    ngx_uint_t status);
static ngx_int_t ngx_http_kroute_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_auth_cookie_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_auth_to_client(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx, ngx_str_t *name, ngx_table_elt_t **first);


static ngx_command_t  ngx_http_kroute_auth_commands[] = {

    { ngx_string("kroute_auth_request"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_kroute_auth_location,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kroute_auth_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_kroute_auth_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_auth_request_module_ctx = {
    ngx_http_kroute_auth_add_variables,    /* preconfiguration */
    ngx_http_kroute_auth_init,             /* postconfiguration */

    ngx_http_kroute_auth_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_auth_request_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_auth_request_module_ctx,
    ngx_http_kroute_auth_commands,         /* module directives */
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


static ngx_http_variable_t  ngx_http_kroute_auth_vars[] = {

    { ngx_string("kroute_auth_url"), NULL, ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, url),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_auth_host"), NULL, ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, host),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_auth_method"), NULL, ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, method),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_auth_original_uri"), NULL,
      ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, original_uri),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_auth_scheme"), NULL, ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, scheme),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_auth_request_redirect"), NULL,
      ngx_http_kroute_auth_variable,
      offsetof(ngx_http_kroute_auth_ctx_t, request_redirect),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* ingress-nginx's auth-method list, by the record's value - 1 */
static ngx_str_t  ngx_http_kroute_auth_methods[] = {
    ngx_string("GET"), ngx_string("HEAD"), ngx_string("POST"),
    ngx_string("PUT"), ngx_string("PATCH"), ngx_string("DELETE"),
    ngx_string("CONNECT"), ngx_string("OPTIONS"), ngx_string("TRACE")
};

static ngx_str_t  ngx_http_kroute_auth_set_cookie = ngx_string("Set-Cookie");
static ngx_str_t  ngx_http_kroute_auth_www_authenticate =
    ngx_string("WWW-Authenticate");


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t
ngx_http_kroute_auth_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(cf, ngx_http_kroute_auth_vars);
}


static ngx_int_t
ngx_http_kroute_auth_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_kroute_auth_cookie_filter;

    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                             ngx_http_kroute_auth_handler);
}


static void *
ngx_http_kroute_auth_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_auth_main_conf_t));
}


/* kroute_auth_request; in the internal exact-match location auth goes to */

static char *
ngx_http_kroute_auth_location(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_kroute_auth_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                          ngx_http_kroute_auth_request_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (amcf->location.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_auth_request\" is already in location "
                           "\"%V\"", &amcf->location);
        return NGX_CONF_ERROR;
    }

    if (!clcf->exact_match || !clcf->internal) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_auth_request\" belongs in an "
                           "\"internal\" location with \"=\"");
        return NGX_CONF_ERROR;
    }

    amcf->location = clcf->name;

    return NGX_CONF_OK;
}


/* kroute_auth_cache size; the shared memory for cached auth answers */

static char *
ngx_http_kroute_auth_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_auth_main_conf_t *amcf = conf;

    ssize_t                        size;
    ngx_str_t                     *value, name;
    ngx_http_kroute_auth_cache_t  *cache;

    if (amcf->cache) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);
    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_auth_cache\" needs a size of at least "
                           "%uz bytes", 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_auth_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "kroute_auth_cache");

    amcf->cache = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_kroute_auth_request_module);
    if (amcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->cache->init = ngx_http_kroute_auth_cache_init_zone;
    amcf->cache->data = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_auth_cache_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_kroute_auth_cache_t  *old = data;

    ngx_http_kroute_auth_cache_t  *cache;

    cache = zone->data;

    if (old) {
        cache->sh = old->sh;
        cache->shpool = old->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_kroute_auth_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&cache->sh->queue);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_kroute_ctx_t       *ctx;
    ngx_http_kroute_auth_ctx_t  *actx;

    /*
     * An error page (custom-http-errors) comes after the access decision
     * of the request's own location, whatever it was: not asked again.
     */

    if (!ngx_http_kroute_routes(r) || r->error_page) {
        return NGX_DECLINED;
    }

    actx = ngx_http_get_module_ctx(r, ngx_http_kroute_auth_request_module);

    if (actx) {
        if (!actx->done) {
            return NGX_AGAIN;
        }

        if (!actx->decided) {
            actx->decided = 1;
            actx->result = ngx_http_kroute_auth_decide(r, actx);
        }

        return actx->result;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->status || ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    actx = ngx_pcalloc(r->pool, sizeof(ngx_http_kroute_auth_ctx_t));
    if (actx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_kroute_auth_prepare(r, ctx, actx);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_set_ctx(r, actx, ngx_http_kroute_auth_request_module);

    if (actx->cache_key.len && ngx_http_kroute_auth_cache_lookup(r, actx)) {
        actx->done = 1;
        actx->decided = 1;
        actx->result = ngx_http_kroute_auth_decide(r, actx);
        return actx->result;
    }

    return ngx_http_kroute_auth_send(r, actx);
}


/* The route's records, and what the subrequest will send. */

static ngx_int_t
ngx_http_kroute_auth_prepare(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_http_kroute_auth_ctx_t *actx)
{
    uint32_t                i;
    kroute_str_t            host;
    kroute_template_ctx_t   tctx;
    const kroute_policy_t  *record;

    for (i = 0; i < ctx->route.policy_count; i++) {
        record = &ctx->route.policies[i];

        if (record->kind != KROUTE_POLICY_EXTERNAL_AUTH) {
            continue;
        }

        switch (record->code) {
        case KROUTE_AUTH_REQUEST:
            actx->request = record;
            break;
        case KROUTE_AUTH_SIGNIN:
            actx->signin = record;
            break;
        case KROUTE_AUTH_RESPONSE_HEADERS:
            actx->headers = record;
            break;
        case KROUTE_AUTH_REQUEST_REDIRECT:
            actx->redirect = record;
            break;
        case KROUTE_AUTH_CACHE:
            actx->cache = record;
            break;
        }
    }

    if (actx->request == NULL) {
        return NGX_DECLINED;
    }

    if (actx->headers) {
        actx->header_list = kroute_policy_str(&ctx->route, actx->headers->a);
    }

    actx->always_cookie =
        (actx->request->flags & KROUTE_AUTH_ALWAYS_SET_COOKIE) ? 1 : 0;

    ngx_http_kroute_template_ctx(r, ctx, &tctx);

    if (ngx_http_kroute_expand(r, kroute_policy_str(&ctx->route,
                                                    actx->request->a),
                               &tctx, &actx->url)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    host = kroute_policy_str(&ctx->route, actx->request->b);
    actx->host.data = (u_char *) host.data;
    actx->host.len = host.len;

    if (actx->request->value == 0
        || actx->request->value > sizeof(ngx_http_kroute_auth_methods)
                                  / sizeof(ngx_str_t))
    {
        ngx_str_set(&actx->method, "GET");

    } else {
        /* as ingress-nginx: with auth-method, X-Original-URI and X-Scheme */
        actx->method = ngx_http_kroute_auth_methods[actx->request->value - 1];
        actx->original_uri = r->unparsed_uri;
        actx->scheme.data = (u_char *) tctx.scheme.data;
        actx->scheme.len = tctx.scheme.len;
    }

    if (actx->redirect) {
        if (ngx_http_kroute_expand(r, kroute_policy_str(&ctx->route,
                                                        actx->redirect->a),
                                   &tctx, &actx->request_redirect)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        actx->request_redirect = r->unparsed_uri;
    }

    if (ngx_array_init(&actx->answer, r->pool, 4,
                       sizeof(ngx_http_kroute_auth_header_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (actx->cache) {
        return ngx_http_kroute_auth_cache_key(r, ctx, actx);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_auth_send(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{
    ngx_http_request_t                *sr;
    ngx_http_post_subrequest_t        *ps;
    ngx_http_kroute_auth_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r,
                                         ngx_http_kroute_auth_request_module);

    if (amcf->location.len == 0) {
        /* fail closed: the rule asked for a check nginx.conf cannot make */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: external auth needs a location with "
                      "\"kroute_auth_request\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_kroute_auth_done;
    ps->data = actx;

    if (ngx_http_subrequest(r, &amcf->location, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* as nginx's auth_request: no body, and the answer's body is dropped */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    sr->header_only = 1;
    sr->headers_in.content_length = NULL;
    sr->headers_in.content_length_n = -1;
    sr->headers_in.transfer_encoding = NULL;
    sr->headers_in.chunked = 0;

    actx->subrequest = sr;

    ngx_http_set_ctx(sr, actx, ngx_http_kroute_auth_request_module);

    return NGX_AGAIN;
}


/* The subrequest ended: keep what its answer says, and wake the request. */

static ngx_int_t
ngx_http_kroute_auth_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_http_kroute_auth_ctx_t *actx = data;

    ngx_uint_t                      i;
    ngx_list_part_t                *part;
    ngx_table_elt_t                *h;
    ngx_http_kroute_auth_header_t  *kept;

    actx->done = 1;
    actx->status = r->headers_out.status;

    if (r->upstream && r->upstream->headers_in.status_n == 0) {
        /* no answer from the auth service (refused, timeout, not HTTP) */
        actx->status = 0;
    }

    if (actx->status && r->upstream) {
        part = &r->upstream->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (h[i].hash == 0
                || h[i].value.len > NGX_HTTP_KROUTE_AUTH_HEADER_MAX)
            {
                continue;
            }

            if (h[i].key.len == sizeof("Cache-Control") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Cache-Control",
                                   h[i].key.len) == 0
                && (ngx_strlcasestrn(h[i].value.data,
                                     h[i].value.data + h[i].value.len,
                                     (u_char *) "no-cache", 8 - 1) != NULL
                    || ngx_strlcasestrn(h[i].value.data,
                                        h[i].value.data + h[i].value.len,
                                        (u_char *) "no-store", 8 - 1) != NULL
                    || ngx_strlcasestrn(h[i].value.data,
                                        h[i].value.data + h[i].value.len,
                                        (u_char *) "private", 7 - 1) != NULL))
            {
                actx->uncacheable = 1;
            }

            if (!(h[i].key.len == ngx_http_kroute_auth_set_cookie.len
                  && ngx_strncasecmp(h[i].key.data,
                                     ngx_http_kroute_auth_set_cookie.data,
                                     h[i].key.len) == 0)
                && !(h[i].key.len
                        == ngx_http_kroute_auth_www_authenticate.len
                     && ngx_strncasecmp(h[i].key.data,
                                ngx_http_kroute_auth_www_authenticate.data,
                                h[i].key.len) == 0)
                && !ngx_http_kroute_auth_listed(actx->header_list, &h[i].key))
            {
                continue;
            }

            kept = ngx_array_push(&actx->answer);
            if (kept == NULL) {
                actx->status = 0;
                break;
            }

            kept->key = h[i].key;
            kept->value = h[i].value;

            if (h[i].key.len == ngx_http_kroute_auth_set_cookie.len
                && ngx_strncasecmp(h[i].key.data,
                                   ngx_http_kroute_auth_set_cookie.data,
                                   h[i].key.len) == 0)
            {
                actx->uncacheable = 1;
            }
        }
    }

    if (actx->cache_key.len && actx->status && !actx->uncacheable) {
        ngx_http_kroute_auth_cache_store(r->main, actx);
    }

    return rc;
}


/* The access phase's answer from the auth answer (fresh or cached). */

static ngx_int_t
ngx_http_kroute_auth_decide(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{

    if (actx->status >= NGX_HTTP_OK
        && actx->status < NGX_HTTP_SPECIAL_RESPONSE)
    {
        if (ngx_http_kroute_auth_pass_headers(r, actx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    if (actx->status == NGX_HTTP_UNAUTHORIZED && actx->signin) {
        return ngx_http_kroute_auth_signin(r, actx);
    }

    if (actx->status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_http_kroute_auth_to_client(r, actx,
                                           &ngx_http_kroute_auth_www_authenticate,
                                           &r->headers_out.www_authenticate)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_UNAUTHORIZED;
    }

    if (actx->status == NGX_HTTP_FORBIDDEN) {
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "kroute: the auth service gave no usable answer "
                  "(status %ui)", actx->status);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * The auth answer's listed headers replace the client's of the same names:
 * a client cannot send its own X-Auth-Request-User past the check. The
 * request's header list is made again without them (the proxy sends what
 * is in the list), then the answer's are added.
 */

static ngx_int_t
ngx_http_kroute_auth_pass_headers(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{
    ngx_uint_t                      i;
    ngx_list_t                      old;
    kroute_str_t                    list;
    ngx_list_part_t                *part;
    ngx_table_elt_t                *h, *copy;
    ngx_http_kroute_auth_header_t  *header;

    if (actx->headers == NULL) {
        return NGX_OK;
    }

    list = actx->header_list;

    /* the list is made again in place: its `last` points into itself */

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_kroute_auth_listed(list, &h[i].key)) {
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];
    }

    header = actx->answer.elts;

    for (i = 0; i < actx->answer.nelts; i++) {
        if (!ngx_http_kroute_auth_listed(list, &header[i].key)) {
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        copy->key = header[i].key;
        copy->value = header[i].value;
        copy->lowcase_key = ngx_pnalloc(r->pool, copy->key.len);
        if (copy->lowcase_key == NULL) {
            return NGX_ERROR;
        }

        copy->hash = ngx_hash_strlow(copy->lowcase_key, copy->key.data,
                                     copy->key.len);
    }

    return NGX_OK;
}


/* A 401 with auth-signin: a 302 to it, with the request's URL in rd. */

static ngx_int_t
ngx_http_kroute_auth_signin(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{
    ngx_str_t                value;
    kroute_template_ctx_t    tctx;
    ngx_http_kroute_ctx_t   *ctx;

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_kroute_template_ctx(r, ctx, &tctx);
    tctx.escape_path = 1;

    if (ngx_http_kroute_expand(r, kroute_policy_str(&ctx->route,
                                                    actx->signin->a),
                               &tctx, &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_kroute_send_location(r, NGX_HTTP_MOVED_TEMPORARILY,
                                         &value);
}


/* Whether `name` is in the comma-separated `list`, ignoring case. */

static ngx_uint_t
ngx_http_kroute_auth_listed(kroute_str_t list, ngx_str_t *name)
{
    const u_char  *p, *end, *comma;

    if (list.len == 0) {
        return 0;
    }

    p = list.data;
    end = list.data + list.len;

    while (p < end) {
        comma = ngx_strlchr((u_char *) p, (u_char *) end, ',');
        if (comma == NULL) {
            comma = end;
        }

        if ((size_t) (comma - p) == name->len
            && ngx_strncasecmp((u_char *) p, name->data, name->len) == 0)
        {
            return 1;
        }

        p = comma + 1;
    }

    return 0;
}


/*
 * The cache key: the records' fingerprint and the host (as ingress-nginx
 * keys by server and location), then auth-cache-key with its $names read
 * from nginx's variables (the agent allows only check_auth_cache_key's).
 */

static ngx_int_t
ngx_http_kroute_auth_cache_key(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_http_kroute_auth_ctx_t *actx)
{
    size_t                      len;
    u_char                     *p, *q, *start, *end, *out;
    uint64_t                    fingerprint;
    ngx_str_t                   name;
    ngx_uint_t                  pass, key;
    kroute_str_t                text;
    ngx_http_variable_value_t  *vv;
    ngx_http_kroute_auth_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r,
                                         ngx_http_kroute_auth_request_module);
    if (amcf->cache == NULL) {
        return NGX_OK;
    }

    fingerprint = kroute_policy_fingerprint(&ctx->route, actx->request)
                  ^ kroute_policy_fingerprint(&ctx->route, actx->cache) * 3;
    if (actx->headers) {
        fingerprint ^= kroute_policy_fingerprint(&ctx->route, actx->headers)
                       * 7;
    }

    text = kroute_policy_str(&ctx->route, actx->cache->a);
    start = (u_char *) text.data;
    end = start + text.len;

    len = 0;
    out = NULL;

    /* the first pass measures, the second writes */

    for (pass = 0; pass < 2; pass++) {
        q = out;

        if (pass == 1) {
            q = ngx_cpymem(q, &fingerprint, sizeof(fingerprint));
            if (r->headers_in.server.len) {
                q = ngx_cpymem(q, r->headers_in.server.data,
                               r->headers_in.server.len);
            }
            *q++ = '\n';

        } else {
            len = sizeof(fingerprint) + r->headers_in.server.len + 1;
        }

        for (p = start; p < end; /* void */) {
            if (*p != '$') {
                if (pass == 1) {
                    *q++ = *p;
                } else {
                    len++;
                }
                p++;
                continue;
            }

            name.data = ++p;
            while (p < end && ((*p >= 'a' && *p <= 'z')
                               || (*p >= '0' && *p <= '9') || *p == '_'))
            {
                p++;
            }
            name.len = p - name.data;

            key = ngx_hash_key(name.data, name.len);
            vv = ngx_http_get_variable(r, &name, key);
            if (vv == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (vv->not_found || vv->len == 0) {
                continue;
            }

            if (pass == 1) {
                q = ngx_cpymem(q, vv->data, vv->len);
            } else {
                len += vv->len;
            }
        }

        if (pass == 0) {
            out = ngx_pnalloc(r->pool, len);
            if (out == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else {
            len = q - out;
        }
    }

    actx->cache_key.data = out;
    actx->cache_key.len = len;

    return NGX_OK;
}


/* Takes a cached answer into actx; 1 when there was a fresh one. */

static ngx_int_t
ngx_http_kroute_auth_cache_lookup(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{
    u_char                             *p, *end, *copy;
    uint32_t                            hash;
    ngx_int_t                           found;
    ngx_rbtree_node_t                  *node, *sentinel;
    ngx_http_kroute_auth_cache_t       *cache;
    ngx_http_kroute_auth_header_t      *header;
    ngx_http_kroute_auth_cache_node_t  *entry;
    ngx_http_kroute_auth_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r,
                                         ngx_http_kroute_auth_request_module);
    cache = amcf->cache->data;

    hash = ngx_murmur_hash2(actx->cache_key.data, actx->cache_key.len);
    found = 0;
    copy = NULL;
    entry = NULL;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {
        if (hash != node->key) {
            node = hash < node->key ? node->left : node->right;
            continue;
        }

        entry = (ngx_http_kroute_auth_cache_node_t *) node;

        if (entry->key_len == actx->cache_key.len
            && ngx_memcmp(entry->data, actx->cache_key.data,
                          entry->key_len) == 0)
        {
            break;
        }

        node = node->right;
        entry = NULL;
    }

    if (entry && entry->expires <= ngx_time()) {
        ngx_queue_remove(&entry->queue);
        ngx_rbtree_delete(&cache->sh->rbtree, &entry->node);
        ngx_slab_free_locked(cache->shpool, entry);
        entry = NULL;
    }

    if (entry) {
        copy = ngx_pnalloc(r->pool, entry->data_len ? entry->data_len : 1);
        if (copy) {
            ngx_memcpy(copy, entry->data + entry->key_len, entry->data_len);
            found = 1;
            actx->status = entry->status;
            end = copy + entry->data_len;
            ngx_queue_remove(&entry->queue);
            ngx_queue_insert_head(&cache->sh->queue, &entry->queue);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (!found) {
        return 0;
    }

    /* the headers: name length, value length (2 bytes each), name, value */

    for (p = copy; p + 4 <= end; /* void */) {
        header = ngx_array_push(&actx->answer);
        if (header == NULL) {
            return 0;
        }

        header->key.len = p[0] << 8 | p[1];
        header->value.len = p[2] << 8 | p[3];
        p += 4;

        if ((size_t) (end - p) < header->key.len + header->value.len) {
            actx->answer.nelts = 0;
            return 0;
        }

        header->key.data = p;
        p += header->key.len;
        header->value.data = p;
        p += header->value.len;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "kroute auth: cached answer %ui", actx->status);

    return 1;
}


static void
ngx_http_kroute_auth_cache_store(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx)
{
    size_t                              size, data_len;
    u_char                             *p;
    time_t                              seconds;
    ngx_uint_t                          i, tries;
    ngx_queue_t                        *q;
    ngx_http_kroute_ctx_t              *ctx;
    ngx_http_kroute_auth_cache_t       *cache;
    ngx_http_kroute_auth_header_t      *header;
    ngx_http_kroute_auth_cache_node_t  *entry, *old;
    ngx_http_kroute_auth_main_conf_t   *amcf;

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return;
    }

    seconds = ngx_http_kroute_auth_cache_seconds(
                  kroute_policy_str(&ctx->route, actx->cache->b),
                  actx->status);
    if (seconds <= 0) {
        return;
    }

    amcf = ngx_http_get_module_main_conf(r,
                                         ngx_http_kroute_auth_request_module);
    cache = amcf->cache->data;

    data_len = 0;
    header = actx->answer.elts;

    for (i = 0; i < actx->answer.nelts; i++) {
        data_len += 4 + header[i].key.len + header[i].value.len;
    }

    size = offsetof(ngx_http_kroute_auth_cache_node_t, data)
           + actx->cache_key.len + data_len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* expired answers at the tail go first; when full, the oldest go too */

    for (tries = 0; tries < 2 && !ngx_queue_empty(&cache->sh->queue);
         tries++)
    {
        q = ngx_queue_last(&cache->sh->queue);
        old = ngx_queue_data(q, ngx_http_kroute_auth_cache_node_t, queue);

        if (old->expires > ngx_time()) {
            break;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&cache->sh->rbtree, &old->node);
        ngx_slab_free_locked(cache->shpool, old);
    }

    entry = ngx_slab_alloc_locked(cache->shpool, size);

    for (tries = 0; entry == NULL && tries < 8
                    && !ngx_queue_empty(&cache->sh->queue); tries++)
    {
        q = ngx_queue_last(&cache->sh->queue);
        old = ngx_queue_data(q, ngx_http_kroute_auth_cache_node_t, queue);
        ngx_queue_remove(q);
        ngx_rbtree_delete(&cache->sh->rbtree, &old->node);
        ngx_slab_free_locked(cache->shpool, old);

        entry = ngx_slab_alloc_locked(cache->shpool, size);
    }

    if (entry == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "kroute: the auth cache is full; an answer of "
                      "%uz bytes is not cached", size);
        return;
    }

    entry->node.key = ngx_murmur_hash2(actx->cache_key.data,
                                       actx->cache_key.len);
    entry->expires = ngx_time() + seconds;
    entry->status = actx->status;
    entry->key_len = actx->cache_key.len;
    entry->data_len = data_len;

    p = ngx_cpymem(entry->data, actx->cache_key.data, actx->cache_key.len);

    for (i = 0; i < actx->answer.nelts; i++) {
        *p++ = (u_char) (header[i].key.len >> 8);
        *p++ = (u_char) header[i].key.len;
        *p++ = (u_char) (header[i].value.len >> 8);
        *p++ = (u_char) header[i].value.len;
        p = ngx_cpymem(p, header[i].key.data, header[i].key.len);
        p = ngx_cpymem(p, header[i].value.data, header[i].value.len);
    }

    ngx_rbtree_insert(&cache->sh->rbtree, &entry->node);
    ngx_queue_insert_head(&cache->sh->queue, &entry->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* "status=seconds ..." (checked by the agent): the first match, or 0. */

static time_t
ngx_http_kroute_auth_cache_seconds(kroute_str_t durations, ngx_uint_t status)
{
    time_t          seconds;
    ngx_uint_t      code;
    const u_char   *p, *end;

    p = durations.data;
    end = p + durations.len;

    while (p + 5 <= end) {
        code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        p += 4;

        seconds = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (seconds < 100000000000) {
                seconds = seconds * 10 + (*p - '0');
            }
            p++;
        }

        if (code == status) {
            return seconds;
        }

        p++;
    }

    return 0;
}


static ngx_int_t
ngx_http_kroute_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   *s;
    ngx_http_kroute_auth_ctx_t  *actx;

    actx = r != r->main ? ngx_http_get_module_ctx(r,
                                       ngx_http_kroute_auth_request_module)
                        : NULL;

    if (actx == NULL || actx->subrequest != r) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) actx + data);

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


/*
 * The auth answer's headers called `name` go to the client's response; the
 * first of them is also set in `*first` when given (the header nginx's own
 * code looks for, such as www_authenticate).
 */

static ngx_int_t
ngx_http_kroute_auth_to_client(ngx_http_request_t *r,
    ngx_http_kroute_auth_ctx_t *actx, ngx_str_t *name, ngx_table_elt_t **first)
{
    ngx_uint_t                      i;
    ngx_table_elt_t                *h;
    ngx_http_kroute_auth_header_t  *header;

    header = actx->answer.elts;

    for (i = 0; i < actx->answer.nelts; i++) {
        if (header[i].key.len != name->len
            || ngx_strncasecmp(header[i].key.data, name->data, name->len)
               != 0)
        {
            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = *name;
        h->value = header[i].value;

        if (first != NULL && *first == NULL) {
            *first = h;
        }
    }

    return NGX_OK;
}


/*
 * The auth answer's Set-Cookie to the client: on the statuses nginx's
 * add_header adds to (as ingress-nginx's `add_header Set-Cookie
 * $auth_cookie`), or on all with auth-always-set-cookie.
 */

static ngx_int_t
ngx_http_kroute_auth_cookie_filter(ngx_http_request_t *r)
{
    ngx_http_kroute_auth_ctx_t     *actx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    actx = ngx_http_get_module_ctx(r, ngx_http_kroute_auth_request_module);

    if (actx == NULL || !actx->done || actx->answer.nelts == 0) {
        return ngx_http_next_header_filter(r);
    }

    if (!actx->always_cookie) {
        switch (r->headers_out.status) {
        case NGX_HTTP_OK:
        case NGX_HTTP_CREATED:
        case NGX_HTTP_NO_CONTENT:
        case NGX_HTTP_PARTIAL_CONTENT:
        case NGX_HTTP_MOVED_PERMANENTLY:
        case NGX_HTTP_MOVED_TEMPORARILY:
        case NGX_HTTP_SEE_OTHER:
        case NGX_HTTP_NOT_MODIFIED:
        case NGX_HTTP_TEMPORARY_REDIRECT:
        case NGX_HTTP_PERMANENT_REDIRECT:
            break;
        default:
            return ngx_http_next_header_filter(r);
        }
    }

    if (ngx_http_kroute_auth_to_client(r, actx,
                                       &ngx_http_kroute_auth_set_cookie, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* once, also when an error page sends another header */
    actx->answer.nelts = 0;

    return ngx_http_next_header_filter(r);
}
