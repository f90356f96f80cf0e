/*
 * ngx_http_kroute_module: the table directory, the per-worker table reader
 * and its refresh timer, the phase handler that routes a request (404, 503,
 * or a backend for the balancer), and the variables.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_init(ngx_conf_t *cf);
static void *ngx_http_kroute_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_kroute_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_kroute_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_kroute_table_dir(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_kroute_init_process(ngx_cycle_t *cycle);
static void ngx_http_kroute_exit_process(ngx_cycle_t *cycle);
static void ngx_http_kroute_refresh_handler(ngx_event_t *ev);
static void ngx_http_kroute_log_poll(ngx_log_t *log, kroute_poll_e rc);
static void ngx_http_kroute_cleanup(void *data);
static ngx_http_kroute_ctx_t *ngx_http_kroute_find_ctx(ngx_http_request_t *r);
static int ngx_http_kroute_header_value(void *data, const unsigned char *name,
    size_t len, kroute_str_t *value);
static unsigned char *ngx_http_kroute_scratch(void *data, size_t size);
static ngx_int_t ngx_http_kroute_route_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_str_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_kroute_generation_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


kroute_table_t  *ngx_http_kroute_table;

static ngx_event_t  ngx_http_kroute_refresh_event;
static ngx_msec_t   ngx_http_kroute_refresh_interval;
static u_char      *ngx_http_kroute_dir;
static ngx_uint_t   ngx_http_kroute_warned_no_table;


static ngx_command_t  ngx_http_kroute_commands[] = {

    { ngx_string("kroute_table"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_kroute_table_dir,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kroute_route"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_kroute_loc_conf_t, route),
      NULL },

    { ngx_string("kroute_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_kroute_balancer,
      0,
      0,
      NULL },

    { ngx_string("kroute_ssl"),
      NGX_HTTP_SRV_CONF|NGX_CONF_TAKE12,
      ngx_http_kroute_ssl,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("kroute_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_kroute_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_kroute_module_ctx = {
    ngx_http_kroute_add_variables,         /* preconfiguration */
    ngx_http_kroute_init,                  /* postconfiguration */

    ngx_http_kroute_create_main_conf,      /* create main configuration */
    ngx_http_kroute_init_main_conf,        /* init main configuration */

    ngx_http_kroute_create_srv_conf,       /* create server configuration */
    ngx_http_kroute_merge_srv_conf,        /* merge server configuration */

    ngx_http_kroute_create_loc_conf,       /* create location configuration */
    ngx_http_kroute_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_module_ctx,           /* module context */
    ngx_http_kroute_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_kroute_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_kroute_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    ngx_http_kroute_var_namespace = 0,
    ngx_http_kroute_var_ingress,
    ngx_http_kroute_var_service
};

static ngx_http_variable_t  ngx_http_kroute_vars[] = {

    { ngx_string("kroute_namespace"), NULL, ngx_http_kroute_str_variable,
      ngx_http_kroute_var_namespace, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_ingress"), NULL, ngx_http_kroute_str_variable,
      ngx_http_kroute_var_ingress, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_service"), NULL, ngx_http_kroute_str_variable,
      ngx_http_kroute_var_service, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_generation"), NULL,
      ngx_http_kroute_generation_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_kroute_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(cf, ngx_http_kroute_vars);
}


ngx_int_t
ngx_http_kroute_add_module_variables(ngx_conf_t *cf, ngx_http_variable_t *vars)
{
    ngx_http_variable_t  *var, *v;

    for (v = vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_kroute_add_phase_handler(ngx_conf_t *cf, ngx_http_phases phase,
    ngx_http_handler_pt handler)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[phase].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_init(ngx_conf_t *cf)
{
    ngx_http_kroute_main_conf_t  *kmcf;

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kroute_module);

    if (kmcf->dir.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                          ngx_http_kroute_route_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_LOG_PHASE,
                                             ngx_http_kroute_log_handler);
}


static void *
ngx_http_kroute_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_main_conf_t  *kmcf;

    kmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_main_conf_t));
    if (kmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     * kmcf->dir = { 0, NULL }; kmcf->shm_zone = NULL;
     */

    kmcf->refresh = NGX_CONF_UNSET_MSEC;
    kmcf->ssl_cache = 0;

    return kmcf;
}


static char *
ngx_http_kroute_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_kroute_main_conf_t  *kmcf = conf;

    ngx_conf_init_msec_value(kmcf->refresh, 1000);

    return NGX_CONF_OK;
}


static void *
ngx_http_kroute_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_kroute_loc_conf_t  *klcf;

    klcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_kroute_loc_conf_t));
    if (klcf == NULL) {
        return NULL;
    }

    klcf->route = NGX_CONF_UNSET;

    return klcf;
}


static char *
ngx_http_kroute_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_kroute_loc_conf_t *prev = parent;
    ngx_http_kroute_loc_conf_t *conf = child;

    ngx_http_kroute_main_conf_t  *kmcf;

    ngx_conf_merge_value(conf->route, prev->route, 0);

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kroute_module);

    if ((conf->route || conf->status) && kmcf->dir.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_route\", \"kroute_status\" and "
                           "\"kroute_ssl\" need \"kroute_table\" in the http "
                           "block");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* kroute_table <dir> [refresh=<time>]; */

static char *
ngx_http_kroute_table_dir(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_main_conf_t *kmcf = conf;

    size_t       size;
    ngx_str_t   *value, name;
    ngx_msec_t   refresh;

    if (kmcf->dir.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "kroute_table needs an absolute directory, "
                           "not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the reader wants a C string without trailing slashes */
    kmcf->dir = value[1];
    while (kmcf->dir.len > 1 && kmcf->dir.data[kmcf->dir.len - 1] == '/') {
        kmcf->dir.len--;
    }
    kmcf->dir.data = ngx_pnalloc(cf->pool, kmcf->dir.len + 1);
    if (kmcf->dir.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(kmcf->dir.data, value[1].data, kmcf->dir.len);
    kmcf->dir.data[kmcf->dir.len] = '\0';

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "refresh=", 8) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        name.data = value[2].data + 8;
        name.len = value[2].len - 8;

        refresh = ngx_parse_time(&name, 0);
        if (refresh == (ngx_msec_t) NGX_ERROR || refresh == 0
            || refresh > 1000)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid refresh \"%V\": "
                               "must be between 1ms and 1s", &name);
            return NGX_CONF_ERROR;
        }

        kmcf->refresh = refresh;
    }

    ngx_str_set(&name, "kroute");

    /* room for the slab pool's own bookkeeping, too */
    size = sizeof(ngx_http_kroute_shm_t);
    size = ngx_align(size + size / 32 + 8 * ngx_pagesize, ngx_pagesize);

    kmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_kroute_module);
    if (kmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    kmcf->shm_zone->init = ngx_http_kroute_init_shm_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_init_process(ngx_cycle_t *cycle)
{
    ngx_http_kroute_main_conf_t  *kmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    kmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_kroute_module);

    if (kmcf == NULL || kmcf->dir.len == 0) {
        return NGX_OK;
    }

    ngx_http_kroute_table = kroute_table_create((char *) kmcf->dir.data);
    if (ngx_http_kroute_table == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "kroute: cannot create the table reader for \"%V\"",
                      &kmcf->dir);
        return NGX_OK;
    }

    ngx_http_kroute_log_poll(cycle->log,
                             kroute_table_refresh(ngx_http_kroute_table,
                                                  ngx_current_msec));
    ngx_http_kroute_publish_stats(cycle->log);

    ngx_http_kroute_refresh_interval = kmcf->refresh;
    ngx_http_kroute_dir = kmcf->dir.data;

    ngx_http_kroute_refresh_event.handler = ngx_http_kroute_refresh_handler;
    ngx_http_kroute_refresh_event.log = cycle->log;
    ngx_http_kroute_refresh_event.data = cycle;
    ngx_http_kroute_refresh_event.cancelable = 1;

    ngx_add_timer(&ngx_http_kroute_refresh_event,
                  ngx_http_kroute_refresh_interval);

    return ngx_http_kroute_ssl_init_process(cycle, kmcf);
}


static void
ngx_http_kroute_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_kroute_shm_t  *shm;

    /* after a reload, a new worker may already own this slot */

    shm = ngx_http_kroute_shm();
    if (shm && ngx_worker < NGX_HTTP_KROUTE_MAX_WORKERS
        && shm->workers[ngx_worker].pid == (ngx_atomic_uint_t) ngx_pid)
    {
        shm->workers[ngx_worker].pid = 0;
    }

    ngx_http_kroute_ssl_exit_process();

    if (ngx_http_kroute_table) {
        kroute_table_destroy(ngx_http_kroute_table);
        ngx_http_kroute_table = NULL;
    }
}


static void
ngx_http_kroute_refresh_handler(ngx_event_t *ev)
{
    if (ngx_http_kroute_table == NULL) {
        return;
    }

    ngx_http_kroute_log_poll(ev->log,
                             kroute_table_refresh(ngx_http_kroute_table,
                                                  ngx_current_msec));
    ngx_http_kroute_publish_stats(ev->log);

    if (!ngx_exiting) {
        ngx_add_timer(ev, ngx_http_kroute_refresh_interval);
    }
}


static void
ngx_http_kroute_log_poll(ngx_log_t *log, kroute_poll_e rc)
{
    u_char                  error[NGX_HTTP_KROUTE_ERROR_LEN];
    size_t                  len;
    uint32_t                key;
    ngx_uint_t              level;
    ngx_atomic_uint_t       old;
    kroute_table_stats_t    stats;
    ngx_http_kroute_shm_t  *shm;

    if (rc == KROUTE_POLL_UNCHANGED || rc == KROUTE_POLL_NO_TABLE) {
        return;
    }

    kroute_table_stats(ngx_http_kroute_table, &stats);

    if (rc == KROUTE_POLL_PICKED_UP) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "kroute: picked up table generation %uL",
                      stats.generation);
        ngx_http_kroute_publish_stats(log);
        return;
    }

    len = kroute_table_last_error(ngx_http_kroute_table, error, sizeof(error));

    /*
     * Every worker refuses a bad snapshot; the first one to do so logs it as
     * an error, the others say so at "info".
     */

    level = NGX_LOG_ERR;
    shm = ngx_http_kroute_shm();

    if (shm) {
        key = ngx_crc32_short(error, len) | 1;
        old = shm->logged_rejection;

        if (old == key || !ngx_atomic_cmp_set(&shm->logged_rejection, old, key))
        {
            level = NGX_LOG_INFO;
        }
    }

    ngx_log_error(level, log, 0,
                  "kroute: refused snapshot: %*s; "
                  "still serving table generation %uL",
                  len, error, stats.generation);

    ngx_http_kroute_publish_stats(log);
}


/* Picks up a new generation if there is one: one atomic load otherwise. */

void
ngx_http_kroute_poll(ngx_log_t *log)
{
    kroute_poll_e  rc;

    rc = kroute_table_poll(ngx_http_kroute_table, ngx_current_msec);
    if (rc != KROUTE_POLL_UNCHANGED) {
        ngx_http_kroute_log_poll(log, rc);
    }
}


static void
ngx_http_kroute_cleanup(void *data)
{
    ngx_http_kroute_ctx_t  *ctx = data;

    if (ngx_http_kroute_table && ctx->snapshot) {
        kroute_table_unpin(ngx_http_kroute_table, ctx->snapshot);
    }
}


/*
 * nginx clears module contexts on an internal redirect (error_page, a
 * named location); the route then still lives in the request pool's
 * cleanup, so the request keeps the route and snapshot it started with.
 */

static ngx_http_kroute_ctx_t *
ngx_http_kroute_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);
    if (ctx || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_kroute_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_kroute_module);
            return ctx;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_kroute_routes(ngx_http_request_t *r)
{
    ngx_http_kroute_loc_conf_t  *klcf;

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kroute_module);

    return klcf->route == 1;
}


ngx_http_kroute_ctx_t *
ngx_http_kroute_route_request(ngx_http_request_t *r)
{
    uint16_t                scope;
    kroute_request_t        request;
    ngx_pool_cleanup_t     *cln;
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_kroute_find_ctx(r);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_kroute_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->route.backend = KROUTE_NO_BACKEND;
    ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
    ctx->path = r->uri;

    ngx_http_set_ctx(r, ctx, ngx_http_kroute_module);

    if (ngx_http_kroute_table == NULL) {
        return ctx;
    }

    ngx_http_kroute_poll(r->connection->log);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_kroute_cleanup;
    cln->data = ctx;

    ctx->snapshot = kroute_table_pin(ngx_http_kroute_table);
    if (ctx->snapshot == NULL) {
        /* once per worker: a missing table must not flood the log */

        if (!ngx_http_kroute_warned_no_table) {
            ngx_http_kroute_warned_no_table = 1;
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "kroute: no route table in \"%s\" yet, "
                          "answering 503", ngx_http_kroute_dir);
        }

        return ctx;
    }

    ctx->generation = kroute_snapshot_generation(ctx->snapshot);

    /* what rules with match conditions read: nothing is copied until asked */

    request.method.data = r->method_name.data;
    request.method.len = r->method_name.len;
    request.args.data = r->args.data;
    request.args.len = r->args.len;
    request.header = ngx_http_kroute_header_value;
    request.scratch = ngx_http_kroute_scratch;
    request.data = r;

    /*
     * the scope: by the address and port the connection arrived on, as
     * nginx already has them (the listening socket's, without a syscall)
     */

    scope = kroute_snapshot_scope(ctx->snapshot,
                                  r->connection->local_sockaddr);
    ctx->scope = scope;

    kroute_snapshot_lookup(ctx->snapshot,
                           r->headers_in.server.data, r->headers_in.server.len,
                           r->uri.data, r->uri.len, &request, scope,
                           &ctx->route);

    if (ctx->route.backend == KROUTE_NO_BACKEND) {
        ctx->status = NGX_HTTP_NOT_FOUND;

    } else if (ctx->route.ready == 0) {
        ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else {
        ctx->status = 0;
    }

    return ctx;
}


/*
 * A request header's value for match conditions: the first header of that
 * name (any case), or all of them joined with ", " in the request's pool,
 * as nginx's $http_* variables join them.
 */

static int
ngx_http_kroute_header_value(void *data, const unsigned char *name, size_t len,
    kroute_str_t *value)
{
    ngx_http_request_t *r = data;

    u_char           *p;
    size_t            total;
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *first;

    /* two passes: the count and length, then (repeated headers) the copy */

    first = NULL;
    found = 0;
    total = 0;
    p = NULL;

    for ( ;; ) {
        part = &r->headers_in.headers.part;
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

            if (h[i].hash == 0 || h[i].key.len != len
                || ngx_strncasecmp(h[i].key.data, (u_char *) name, len) != 0)
            {
                continue;
            }

            if (p) {
                if (p != value->data) {
                    *p++ = ','; *p++ = ' ';
                }

                p = ngx_cpymem(p, h[i].value.data, h[i].value.len);
                continue;
            }

            if (first == NULL) {
                first = &h[i];
            }

            found++;
            total += h[i].value.len + (found > 1 ? 2 : 0);
        }

        if (found == 0) {
            return 0;
        }

        if (found == 1) {
            value->data = first->value.data;
            value->len = first->value.len;
            return 1;
        }

        if (p) {
            value->len = total;
            return 1;
        }

        p = ngx_pnalloc(r->pool, total);
        if (p == NULL) {
            return 0;
        }

        value->data = p;
    }
}


static unsigned char *
ngx_http_kroute_scratch(void *data, size_t size)
{
    ngx_http_request_t *r = data;

    return ngx_pnalloc(r->pool, size ? size : 1);
}


ngx_http_core_loc_conf_t *
ngx_http_kroute_core_loc_conf(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    void                      **loc_conf;
    ngx_http_core_loc_conf_t   *clcf;

    if (ctx->loc_conf == NULL || r->loc_conf != ctx->loc_conf) {
        loc_conf = ngx_palloc(r->pool, sizeof(void *) * ngx_http_max_module);
        if (loc_conf == NULL) {
            return NULL;
        }

        clcf = ngx_palloc(r->pool, sizeof(ngx_http_core_loc_conf_t));
        if (clcf == NULL) {
            return NULL;
        }

        ngx_memcpy(loc_conf, r->loc_conf, sizeof(void *) * ngx_http_max_module);
        ngx_memcpy(clcf, r->loc_conf[ngx_http_core_module.ctx_index],
                   sizeof(ngx_http_core_loc_conf_t));

        loc_conf[ngx_http_core_module.ctx_index] = clcf;
        r->loc_conf = loc_conf;
        ctx->loc_conf = loc_conf;
    }

    return r->loc_conf[ngx_http_core_module.ctx_index];
}


ngx_http_upstream_conf_t *
ngx_http_kroute_upstream_conf(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    ngx_http_upstream_conf_t  *conf;

    if (r->upstream == NULL) {
        return NULL;
    }

    if (r->upstream->conf != ctx->upstream_conf) {
        conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
        if (conf == NULL) {
            return NULL;
        }

        ngx_memcpy(conf, r->upstream->conf, sizeof(ngx_http_upstream_conf_t));
        r->upstream->conf = conf;
        ctx->upstream_conf = conf;
    }

    return r->upstream->conf;
}


/*
 * The last of kroute's rewrite-phase handlers (the policy modules' run
 * before it, see module/config): a request no policy answered gets 404 or
 * 503 here, or goes on to the balancer.
 */

static ngx_int_t
ngx_http_kroute_route_handler(ngx_http_request_t *r)
{
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->status) {
        return ctx->status;
    }

    return NGX_DECLINED;
}


/*
 * The request's scheme: https over TLS; with the table's use-forwarded-
 * headers, the X-Forwarded-Proto a proxy in front of nginx sent ("http" or
 * "https", any case); else http.
 */

ngx_uint_t
ngx_http_kroute_https(ngx_http_request_t *r, ngx_http_kroute_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        return 1;
    }
#endif

    if (ctx == NULL || !ctx->route.use_forwarded_headers) {
        return 0;
    }

    h = ngx_http_kroute_find_header(&r->headers_in.headers,
                                    (u_char *) "X-Forwarded-Proto",
                                    sizeof("X-Forwarded-Proto") - 1);

    return h && h->value.len == 5
           && ngx_strncasecmp(h->value.data, (u_char *) "https", 5) == 0;
}


ngx_table_elt_t *
ngx_http_kroute_find_header(ngx_list_t *headers, const u_char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0 && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


void
ngx_http_kroute_clear_headers(ngx_list_t *headers, const u_char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            h[i].hash = 0;
        }
    }
}


void
ngx_http_kroute_template_ctx(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, kroute_template_ctx_t *tctx)
{
    ngx_memzero(tctx, sizeof(kroute_template_ctx_t));

    if (ngx_http_kroute_https(r, ctx)) {
        tctx->scheme.data = (const unsigned char *) "https";
        tctx->scheme.len = 5;

    } else {
        tctx->scheme.data = (const unsigned char *) "http";
        tctx->scheme.len = 4;
    }

    tctx->host.data = r->headers_in.server.data;
    tctx->host.len = r->headers_in.server.len;

    if (r->headers_in.host) {
        tctx->http_host.data = r->headers_in.host->value.data;
        tctx->http_host.len = r->headers_in.host->value.len;

    } else {
        tctx->http_host = tctx->host;
    }

    tctx->request_uri.data = r->unparsed_uri.data;
    tctx->request_uri.len = r->unparsed_uri.len;
    tctx->uri.data = ctx->path.data;
    tctx->uri.len = ctx->path.len;
    tctx->args.data = r->args.data;
    tctx->args.len = r->args.len;
    tctx->subject = tctx->uri;
    tctx->captures = ctx->route.captures;
    tctx->capture_count = ctx->route.capture_count;
    tctx->prefix_length = ctx->route.prefix_length;
}


ngx_int_t
ngx_http_kroute_expand(ngx_http_request_t *r, kroute_str_t text,
    kroute_template_ctx_t *tctx, ngx_str_t *out)
{
    size_t   len;
    u_char  *p;

    len = kroute_template_length(text, tctx);

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    out->len = kroute_template_expand(text, tctx, p, NULL) - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_kroute_send_location(ngx_http_request_t *r, ngx_uint_t code,
    ngx_str_t *value)
{
    ngx_table_elt_t  *location;

    location = ngx_list_push(&r->headers_out.headers);
    if (location == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    location->hash = 1;
    ngx_str_set(&location->key, "Location");
    location->value = *value;

    ngx_http_clear_location(r);
    r->headers_out.location = location;

    return code;
}


static ngx_int_t
ngx_http_kroute_log_handler(ngx_http_request_t *r)
{
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx && r == r->main) {
        ngx_http_kroute_count_request(r, ctx);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_str_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    kroute_str_t           *s;
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx == NULL || ctx->route.backend == KROUTE_NO_BACKEND) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case ngx_http_kroute_var_namespace:
        s = &ctx->route.ns;
        break;

    case ngx_http_kroute_var_ingress:
        s = &ctx->route.ingress;
        break;

    default: /* ngx_http_kroute_var_service */
        s = &ctx->route.service;
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    /* the snapshot is pinned until the request pool is destroyed */

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_kroute_generation_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                 *p;
    ngx_http_kroute_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_kroute_module);

    if (ctx == NULL || ctx->snapshot == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%uL", ctx->generation) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}
