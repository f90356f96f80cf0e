/*
 * ngx_http_kroute_protocol_module: moves a request whose rule has a
 * kProtocol record (routetable/policy/protocol.h) to the named location
 * nginx.conf has for that protocol, as "kroute_protocol <protocol> @name;"
 * says, since proxy_pass, grpc_pass and proxy_http_version are location-wide.
 * Once per request (the rewrite phase runs again in the named location);
 * the last rewrite handler before the router. A protocol without a location
 * answers 502 and logs why; a rule whose upstream TLS the agent could not
 * build answers 503. The record's TLS settings are applied per connection by
 * the balancer (ngx_http_kroute_protocol_tls below).
 */

#include "ngx_http_kroute_module.h"


/* The locations a record can ask for. */
enum {
    NGX_HTTP_KROUTE_PROTOCOL_HTTP10 = 0,
    NGX_HTTP_KROUTE_PROTOCOL_HTTPS,
    NGX_HTTP_KROUTE_PROTOCOL_HTTPS10,
    NGX_HTTP_KROUTE_PROTOCOL_GRPC,
    NGX_HTTP_KROUTE_PROTOCOL_GRPCS,
    NGX_HTTP_KROUTE_PROTOCOLS
};


typedef struct {
    ngx_str_t                     location[NGX_HTTP_KROUTE_PROTOCOLS];
} ngx_http_kroute_protocol_loc_conf_t;

/* A "kroute_protocol" line, checked once the server's locations are known. */
typedef struct {
    ngx_str_t                     location;
    ngx_http_core_srv_conf_t     *server;
    u_char                       *file;
    ngx_uint_t                    line;
} ngx_http_kroute_protocol_use_t;

typedef struct {
    ngx_array_t                   uses;         /* ngx_http_kroute_protocol_use_t */
} ngx_http_kroute_protocol_main_conf_t;


static ngx_int_t ngx_http_kroute_protocol_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_protocol_check(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_protocol_init_process(ngx_cycle_t *cycle);
static void *ngx_http_kroute_protocol_create_main_conf(ngx_conf_t *cf);
static void ngx_http_kroute_protocol_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_kroute_protocol_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_protocol_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_kroute_protocol(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_protocol_handler(ngx_http_request_t *r);


/* indexed by NGX_HTTP_KROUTE_PROTOCOL_* */
static ngx_str_t  ngx_http_kroute_protocol_names[] = {
    ngx_string("http10"),
    ngx_string("https"),
    ngx_string("https10"),
    ngx_string("grpc"),
    ngx_string("grpcs"),
};

/* parsed CA and client certificates of records, per worker */
static kroute_tls_upstream_t  *ngx_http_kroute_upstream_tls;


static ngx_command_t  ngx_http_kroute_protocol_commands[] = {

    { ngx_string("kroute_protocol"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_kroute_protocol,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_protocol_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_protocol_init,         /* postconfiguration */

    ngx_http_kroute_protocol_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_kroute_protocol_create_loc_conf, /* create location configuration */
    ngx_http_kroute_protocol_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_protocol_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_protocol_module_ctx,  /* module context */
    ngx_http_kroute_protocol_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_kroute_protocol_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_kroute_protocol_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_kroute_protocol_init(ngx_conf_t *cf)
{
    if (ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                          ngx_http_kroute_protocol_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_kroute_protocol_check(cf);
}


/* Every "kroute_protocol" names a location of its server: nginx -t says so. */

static ngx_int_t
ngx_http_kroute_protocol_check(ngx_conf_t *cf)
{
    ngx_uint_t                             i;
    ngx_http_core_loc_conf_t             **named;
    ngx_http_kroute_protocol_use_t        *use;
    ngx_http_kroute_protocol_main_conf_t  *kpmcf;

    kpmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kroute_protocol_module);
    use = kpmcf->uses.elts;

    for (i = 0; i < kpmcf->uses.nelts; i++) {

        for (named = use[i].server->named_locations; named && *named; named++) {
            if ((*named)->name.len == use[i].location.len
                && ngx_strncmp((*named)->name.data, use[i].location.data,
                               use[i].location.len) == 0)
            {
                break;
            }
        }

        if (named == NULL || *named == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"kroute_protocol\" names location \"%V\", which "
                          "its server does not have, in %s:%ui",
                          &use[i].location, use[i].file, use[i].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_protocol_init_process(ngx_cycle_t *cycle)
{
    /* a handful of Secrets per worker; more only cost parsing again */
    ngx_http_kroute_upstream_tls = kroute_tls_upstream_create(256);
    if (ngx_http_kroute_upstream_tls == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "kroute: cannot create the upstream TLS cache");
    }

    return NGX_OK;
}


static void
ngx_http_kroute_protocol_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_kroute_upstream_tls) {
        kroute_tls_upstream_destroy(ngx_http_kroute_upstream_tls);
        ngx_http_kroute_upstream_tls = NULL;
    }
}


static void *
ngx_http_kroute_protocol_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_protocol_main_conf_t  *kpmcf;

    kpmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_protocol_main_conf_t));
    if (kpmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&kpmcf->uses, cf->pool, 8,
                       sizeof(ngx_http_kroute_protocol_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    return kpmcf;
}


static void *
ngx_http_kroute_protocol_create_loc_conf(ngx_conf_t *cf)
{
    /* zeroed: no location for any protocol */
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_protocol_loc_conf_t));
}


static char *
ngx_http_kroute_protocol_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kroute_protocol_loc_conf_t  *prev = parent;
    ngx_http_kroute_protocol_loc_conf_t  *conf = child;

    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_KROUTE_PROTOCOLS; i++) {
        ngx_conf_merge_str_value(conf->location[i], prev->location[i], "");
    }

    return NGX_CONF_OK;
}


/* kroute_protocol http10|https|https10|grpc|grpcs @location; */

static char *
ngx_http_kroute_protocol(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_protocol_loc_conf_t  *kplcf = conf;

    ngx_str_t                             *value;
    ngx_uint_t                             i;
    ngx_http_kroute_protocol_use_t        *use;
    ngx_http_kroute_protocol_main_conf_t  *kpmcf;

    value = cf->args->elts;

    for (i = 0; i < NGX_HTTP_KROUTE_PROTOCOLS; i++) {
        if (value[1].len == ngx_http_kroute_protocol_names[i].len
            && ngx_strncmp(value[1].data, ngx_http_kroute_protocol_names[i].data,
                           value[1].len) == 0)
        {
            break;
        }
    }

    if (i == NGX_HTTP_KROUTE_PROTOCOLS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown protocol \"%V\" (http10, https, https10, "
                           "grpc or grpcs)", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (kplcf->location[i].data) {
        return "is duplicate";
    }

    if (value[2].len < 2 || value[2].data[0] != '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a named location (\"@name\")",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    kplcf->location[i] = value[2];

    kpmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_kroute_protocol_module);

    use = ngx_array_push(&kpmcf->uses);
    if (use == NULL) {
        return NGX_CONF_ERROR;
    }

    use->location = value[2];
    use->server = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    use->file = cf->conf_file->file.name.data;
    use->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_protocol_handler(ngx_http_request_t *r)
{
    ngx_uint_t                            which;
    const kroute_policy_t                *record;
    ngx_http_kroute_ctx_t                *ctx;
    ngx_http_kroute_protocol_loc_conf_t  *kplcf;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->protocol || ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    ctx->protocol = 1;

    record = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                KROUTE_POLICY_PROTOCOL);
    if (record == NULL) {
        return NGX_DECLINED;
    }

    switch (record->code) {

    case KROUTE_PROTOCOL_GRPC:
        which = NGX_HTTP_KROUTE_PROTOCOL_GRPC;
        break;

    case KROUTE_PROTOCOL_GRPCS:
        which = NGX_HTTP_KROUTE_PROTOCOL_GRPCS;
        break;

    case KROUTE_PROTOCOL_HTTPS:
    case KROUTE_PROTOCOL_AUTO_HTTP:
        if (record->code == KROUTE_PROTOCOL_HTTPS
            || ngx_http_kroute_https(r, ctx))
        {
            which = (record->flags & KROUTE_PROTOCOL_HTTP10)
                    ? NGX_HTTP_KROUTE_PROTOCOL_HTTPS10
                    : NGX_HTTP_KROUTE_PROTOCOL_HTTPS;
            break;
        }

        /* fall through */

    default: /* KROUTE_PROTOCOL_HTTP */
        if (!(record->flags & KROUTE_PROTOCOL_HTTP10)) {
            return NGX_DECLINED;
        }

        which = NGX_HTTP_KROUTE_PROTOCOL_HTTP10;
    }

    kplcf = ngx_http_get_module_loc_conf(r, ngx_http_kroute_protocol_module);

    if (kplcf->location[which].len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: the route asks for protocol \"%V\" but "
                      "nginx.conf has no \"kroute_protocol %V @location;\"",
                      &ngx_http_kroute_protocol_names[which],
                      &ngx_http_kroute_protocol_names[which]);
        return NGX_HTTP_BAD_GATEWAY;
    }

    /* runs the named location's phases; the request is counted there */
    (void) ngx_http_named_location(r, &kplcf->location[which]);

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


ngx_int_t
ngx_http_kroute_protocol_tls(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_connection_t *c)
{
    const char             *problem;
    const kroute_policy_t  *record;

    record = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                KROUTE_POLICY_PROTOCOL);
    if (record == NULL || c->ssl == NULL) {
        return NGX_OK;
    }

    if (ngx_http_kroute_upstream_tls == NULL) {
        problem = "no upstream TLS cache";

    } else if (kroute_tls_upstream_prepare(ngx_http_kroute_upstream_tls,
                                           &ctx->route, record,
                                           c->ssl->connection, &problem)
               == 0)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "kroute: upstream TLS of this route is unusable: %s",
                  problem);

    return NGX_ERROR;
}
