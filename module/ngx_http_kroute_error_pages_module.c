/*
 * ngx_http_kroute_error_pages_module: a route's kErrorPages record
 * (routetable/policy/error_pages.h), as ingress-nginx's custom-http-errors
 * and default-backend. Rewrite phase, after the canary's choice of backend
 * and before the router's 503:
 *
 * - a rule whose Service has no ready endpoints goes to the record's
 *   backend (kWhenNoEndpoints);
 * - the record's statuses get an error_page each, to the location with
 *   "kroute_error_pages" (a named one in nginx.conf), on this request's
 *   copy of the core location conf; the balancer's init_peer then turns on
 *   intercept_errors on this request's copy of the upstream conf
 *   (ngx_http_kroute_error_pages_upstream), so the Service's own answers
 *   with those statuses go there too, unless kOnlyOwnErrors;
 * - in that location, the request goes to the record's backend, which
 *   sees the $kroute_error_code and $kroute_service_port variables (X-Code,
 *   X-Service-Port); nginx keeps the original status for the client.
 *
 * Rules without the record cost one scan of their records.
 */

#include "ngx_http_kroute_module.h"


typedef struct {
    ngx_str_t                  location;     /* the kroute_error_pages one */
} ngx_http_kroute_error_pages_main_conf_t;

typedef struct {
    ngx_flag_t                 serve;        /* kroute_error_pages */
} ngx_http_kroute_error_pages_loc_conf_t;


static ngx_int_t ngx_http_kroute_error_pages_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_error_pages_init(ngx_conf_t *cf);
static void *ngx_http_kroute_error_pages_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_kroute_error_pages_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_error_pages_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_kroute_error_pages(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_error_pages_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_error_pages_serve(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record);
static ngx_int_t ngx_http_kroute_error_pages_install(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record);
static const kroute_policy_t *ngx_http_kroute_error_pages_record(
    ngx_http_kroute_ctx_t *ctx);
static ngx_int_t ngx_http_kroute_error_code_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_service_port_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_http_kroute_error_pages_commands[] = {

    { ngx_string("kroute_error_pages"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_kroute_error_pages,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_error_pages_module_ctx = {
    ngx_http_kroute_error_pages_add_variables, /* preconfiguration */
    ngx_http_kroute_error_pages_init,      /* postconfiguration */

    ngx_http_kroute_error_pages_create_main_conf,
                                           /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_kroute_error_pages_create_loc_conf,
                                           /* create location configuration */
    ngx_http_kroute_error_pages_merge_loc_conf
                                           /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_error_pages_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_error_pages_module_ctx, /* module context */
    ngx_http_kroute_error_pages_commands,  /* module directives */
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


static ngx_http_variable_t  ngx_http_kroute_error_pages_vars[] = {

    { ngx_string("kroute_error_code"), NULL,
      ngx_http_kroute_error_code_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_service_port"), NULL,
      ngx_http_kroute_service_port_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_kroute_error_pages_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(
                                          cf, ngx_http_kroute_error_pages_vars);
}


static ngx_int_t
ngx_http_kroute_error_pages_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                             ngx_http_kroute_error_pages_handler);
}


static void *
ngx_http_kroute_error_pages_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_kroute_error_pages_main_conf_t));
}


static void *
ngx_http_kroute_error_pages_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_error_pages_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_kroute_error_pages_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->serve = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_kroute_error_pages_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_kroute_error_pages_loc_conf_t  *conf = child;

    /* only the location that says so serves error pages, not its children */
    ngx_conf_init_value(conf->serve, 0);

    return NGX_CONF_OK;
}


/* kroute_error_pages; in the (named) location that serves them */

static char *
ngx_http_kroute_error_pages(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_error_pages_loc_conf_t *elcf = conf;

    ngx_http_core_loc_conf_t                *clcf;
    ngx_http_kroute_error_pages_main_conf_t *emcf;

    if (elcf->serve != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    emcf = ngx_http_conf_get_module_main_conf(cf,
                                           ngx_http_kroute_error_pages_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (emcf->location.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_error_pages\" is already in location "
                           "\"%V\"", &emcf->location);
        return NGX_CONF_ERROR;
    }

    if (clcf->name.len == 0 || clcf->name.data[0] != '@') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_error_pages\" belongs in a named "
                           "location");
        return NGX_CONF_ERROR;
    }

    emcf->location = clcf->name;
    elcf->serve = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_error_pages_handler(ngx_http_request_t *r)
{
    const kroute_policy_t                   *record;
    kroute_backend_t                         info;
    ngx_http_kroute_ctx_t                   *ctx;
    ngx_http_kroute_error_pages_loc_conf_t  *elcf;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    record = ngx_http_kroute_error_pages_record(ctx);
    if (record == NULL) {
        return NGX_DECLINED;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_kroute_error_pages_module);

    if (elcf->serve) {
        return ngx_http_kroute_error_pages_serve(r, ctx, record);
    }

    /* idempotent: a later location (a protocol's) gets its own copies */

    if ((record->flags & KROUTE_ERROR_PAGES_WHEN_NO_ENDPOINTS)
        && ctx->status == NGX_HTTP_SERVICE_UNAVAILABLE
        && kroute_snapshot_backend(ctx->snapshot, record->backend, &info) == 0
        && info.ready > 0)
    {
        ctx->route.backend = record->backend;
        ctx->route.ready = info.ready;
        ctx->status = 0;
    }

    if (record->a.length == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_kroute_error_pages_install(r, ctx, record);
}


/* The rule's record, when the rule has one this snapshot can use. */

static const kroute_policy_t *
ngx_http_kroute_error_pages_record(ngx_http_kroute_ctx_t *ctx)
{
    const kroute_policy_t  *record;

    if (ctx->route.policy_count == 0 || ctx->snapshot == NULL) {
        return NULL;
    }

    record = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                                KROUTE_POLICY_ERROR_PAGES);

    if (record == NULL || record->backend == KROUTE_NO_BACKEND) {
        return NULL;
    }

    return record;
}


/*
 * In the error pages location: the error backend answers, or, when it has
 * no ready endpoint either, nginx's own page with the original status.
 */

static ngx_int_t
ngx_http_kroute_error_pages_serve(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record)
{
    kroute_backend_t  info;

    ctx->intercept_errors = 0;

    if (kroute_snapshot_backend(ctx->snapshot, record->backend, &info) != 0
        || info.ready == 0)
    {
        ctx->status = r->err_status ? r->err_status
                                    : NGX_HTTP_SERVICE_UNAVAILABLE;
        return NGX_DECLINED;
    }

    ctx->route.backend = record->backend;
    ctx->route.ready = info.ready;
    ctx->status = 0;

    return NGX_DECLINED;
}


/*
 * error_page <status> @location for each listed status, on this request's
 * copy of the location's settings; the location's own error pages (nginx.conf
 * sets none) come after them.
 */

static ngx_int_t
ngx_http_kroute_error_pages_install(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record)
{
    ngx_uint_t                                i, n;
    kroute_str_t                              list;
    ngx_array_t                              *pages;
    const u_char                             *p;
    ngx_http_err_page_t                      *page;
    ngx_http_core_loc_conf_t                 *clcf;
    ngx_http_kroute_error_pages_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_kroute_error_pages_module);

    if (emcf->location.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "kroute: custom error pages need a named location "
                      "with \"kroute_error_pages\"");
        return NGX_DECLINED;
    }

    list = kroute_policy_str(&ctx->route, record->a);
    n = (list.len + 1) / 4;

    clcf = ngx_http_kroute_core_loc_conf(r, ctx);
    if (clcf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pages = ngx_array_create(r->pool,
                             n + (clcf->error_pages ? clcf->error_pages->nelts
                                                    : 0),
                             sizeof(ngx_http_err_page_t));
    if (pages == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        p = list.data + 4 * i;

        page = ngx_array_push(pages);
        if (page == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memzero(page, sizeof(ngx_http_err_page_t));
        page->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        page->overwrite = -1;                  /* the client keeps it */
        page->value.value = emcf->location;
    }

    if (clcf->error_pages) {
        page = ngx_array_push_n(pages, clcf->error_pages->nelts);
        if (page == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(page, clcf->error_pages->elts,
                   clcf->error_pages->nelts * sizeof(ngx_http_err_page_t));
    }

    clcf->error_pages = pages;

    ctx->intercept_errors =
                   !(record->flags & KROUTE_ERROR_PAGES_ONLY_OWN_ERRORS);

    return NGX_DECLINED;
}


/*
 * Called by the balancer's init_peer: the Service's answers with a listed
 * status go to the error pages too, on this request's upstream conf copy.
 */

ngx_int_t
ngx_http_kroute_error_pages_upstream(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    ngx_http_upstream_conf_t  *ucf;

    if (!ctx->intercept_errors) {
        return NGX_OK;
    }

    ucf = ngx_http_kroute_upstream_conf(r, ctx);
    if (ucf == NULL) {
        return NGX_ERROR;
    }

    ucf->intercept_errors = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_error_code_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char  *p;

    if (r->err_status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", r->err_status) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* The rule's Service port as its Ingress names it, for X-Service-Port. */

static ngx_int_t
ngx_http_kroute_service_port_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    kroute_str_t            port;
    const kroute_policy_t  *record;
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    record = ctx ? ngx_http_kroute_error_pages_record(ctx) : NULL;

    if (record == NULL || record->b.length == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    port = kroute_policy_str(&ctx->route, record->b);

    v->len = port.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) port.data;

    return NGX_OK;
}
