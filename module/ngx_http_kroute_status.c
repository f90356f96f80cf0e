/*
 * The kroute status location ("kroute_status json|prometheus") and the shared
 * memory behind it: each worker writes its own slot (table generation,
 * counts, last error, requests, upstream response time histogram); requests
 * per Ingress share one table of atomic counters.
 */

#include "ngx_http_kroute_module.h"


/*
 * Status and metrics are written into a chain of buffers from the request
 * pool, a new one whenever the current one has no room for the next row: the
 * output is whole however many Ingresses other workers count meanwhile.
 */
#define NGX_HTTP_KROUTE_STATUS_BUF_SIZE  8192
/* room for any one row: fixed text, two escaped names, numbers */
#define NGX_HTTP_KROUTE_STATUS_ROW       (512 + 2 * NGX_HTTP_KROUTE_NAME_LEN)


typedef struct {
    ngx_pool_t                   *pool;
    ngx_chain_t                  *first;
    ngx_chain_t                 **next;     /* where the next link goes */
    ngx_buf_t                    *buf;      /* the one being written */
    off_t                         size;     /* of the buffers before it */
} ngx_http_kroute_status_out_t;


static ngx_int_t ngx_http_kroute_status_handler(ngx_http_request_t *r);
static u_char *ngx_http_kroute_status_room(ngx_http_kroute_status_out_t *out,
    size_t len);
static ngx_int_t ngx_http_kroute_status_printf(
    ngx_http_kroute_status_out_t *out, const char *fmt, ...);
static ngx_int_t ngx_http_kroute_status_json(ngx_http_kroute_status_out_t *out,
    ngx_http_kroute_shm_t *shm);
static ngx_int_t ngx_http_kroute_status_prometheus(
    ngx_http_kroute_status_out_t *out, ngx_http_kroute_shm_t *shm);
static u_char *ngx_http_kroute_escape_label(u_char *p, u_char *end, u_char *s,
    size_t len);
static ngx_http_kroute_ingress_stats_t *ngx_http_kroute_ingress_slot(
    ngx_http_kroute_shm_t *shm, kroute_route_t *route);


static ngx_http_kroute_shm_t  *ngx_http_kroute_shm_data;

/*
 * upper bounds of the upstream response time buckets, in ms; the last bucket
 * is +Inf
 */
static ngx_msec_t  ngx_http_kroute_buckets[NGX_HTTP_KROUTE_BUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

/* the per-worker metrics, one Prometheus family each */
typedef struct {
    char                         *name;
    char                         *help;
    char                         *type;
    size_t                        offset;  /* in the worker's stats slot */
    ngx_uint_t                    age;     /* unix ms, shown as seconds ago */
} ngx_http_kroute_worker_metric_t;

static ngx_http_kroute_worker_metric_t  ngx_http_kroute_worker_metrics[] = {

    { "kroute_table_generation",
      "Route table generation each worker serves.", "gauge",
      offsetof(ngx_http_kroute_worker_stats_t, generation), 0 },

    { "kroute_table_snapshot_age_seconds",
      "Age of the snapshot each worker serves.", "gauge",
      offsetof(ngx_http_kroute_worker_stats_t, built_unix_ms), 1 },

    { "kroute_table_pickups_total",
      "Snapshots picked up.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, pickups), 0 },

    { "kroute_table_rejected_snapshots_total",
      "Snapshots refused by validation.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, rejections), 0 },

    { "kroute_regex_match_limit_total",
      "Regex path matches stopped by their work bound (a pathological "
      "use-regex path; such a match counts as no match).", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, regex_limit_hits), 0 },

    { "kroute_tls_certificates_parsed_total",
      "Certificates parsed into the worker's cache (one per certificate "
      "per worker, again after eviction).", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, certificates_parsed), 0 },

    { "kroute_tls_certificate_failures_total",
      "Certificates of the table that did not parse, did not match their "
      "key or had expired.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, certificate_failures), 0 },

    { "kroute_tls_certificates_cached",
      "Parsed certificates in the worker's cache.", "gauge",
      offsetof(ngx_http_kroute_worker_stats_t, certificates_cached), 0 },

    { "kroute_limit_requests_refused_total",
      "Requests refused by a limit-rps or limit-rpm.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, limited_requests), 0 },

    { "kroute_limit_connections_refused_total",
      "Requests refused by a limit-connections.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, limited_connections), 0 },

    { "kroute_limit_zone_full_total",
      "Requests a limit was not applied to because the kroute_limits "
      "zone was full.", "counter",
      offsetof(ngx_http_kroute_worker_stats_t, limit_zone_full), 0 },

    { NULL, NULL, NULL, 0, 0 }
};

static char  *ngx_http_kroute_classes[NGX_HTTP_KROUTE_STATUS_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx", "other"
};


ngx_int_t
ngx_http_kroute_init_shm_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        shm_zone->data = data;
        ngx_http_kroute_shm_data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    shm_zone->data = ngx_slab_calloc(shpool, sizeof(ngx_http_kroute_shm_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_kroute_shm_data = shm_zone->data;

    return NGX_OK;
}


ngx_http_kroute_shm_t *
ngx_http_kroute_shm(void)
{
    return ngx_http_kroute_shm_data;
}


ngx_http_kroute_worker_stats_t *
ngx_http_kroute_worker_stats(void)
{
    if (ngx_http_kroute_shm_data == NULL
        || ngx_worker >= NGX_HTTP_KROUTE_MAX_WORKERS)
    {
        return NULL;
    }

    return &ngx_http_kroute_shm_data->workers[ngx_worker];
}


void
ngx_http_kroute_publish_stats(ngx_log_t *log)
{
    kroute_tls_stats_t               tls;
    kroute_table_stats_t             stats;
    ngx_http_kroute_worker_stats_t  *w;

    w = ngx_http_kroute_worker_stats();

    if (w == NULL || ngx_http_kroute_table == NULL) {
        return;
    }

    kroute_table_stats(ngx_http_kroute_table, &stats);

    w->pid = ngx_pid;
    w->generation = stats.generation;
    w->built_unix_ms = stats.built_unix_ms;
    w->hosts = stats.hosts;
    w->routes = stats.routes;
    w->backends = stats.backends;
    w->endpoints = stats.endpoints;
    w->pickups = stats.pickups;
    w->rejections = stats.rejections;
    w->regex_limit_hits = stats.regex_limit_hits;
    if (ngx_http_kroute_tls_cache) {
        kroute_tls_stats(ngx_http_kroute_tls_cache, &tls);
        w->certificates_parsed = tls.parses;
        w->certificate_failures = tls.failures;
        w->certificates_cached = tls.size;
    }

    w->last_error_len = kroute_table_last_error(ngx_http_kroute_table,
                                                w->last_error,
                                                NGX_HTTP_KROUTE_ERROR_LEN);
}


void
ngx_http_kroute_count_request(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx)
{
    ngx_uint_t                        class, i;
    ngx_msec_t                        ms;
    ngx_http_upstream_state_t        *state;
    ngx_http_kroute_ingress_stats_t  *ingress;
    ngx_http_kroute_worker_stats_t   *w;

    w = ngx_http_kroute_worker_stats();
    if (w == NULL) {
        return;
    }

    class = r->headers_out.status / 100;
    class = (class >= 1 && class <= 5) ? class - 1
                                       : NGX_HTTP_KROUTE_STATUS_CLASSES - 1;

    /* the worker's own slot: one writer, no atomics needed */
    w->requests[class]++;

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        ms = state[r->upstream_states->nelts - 1].response_time;

        if (ms != (ngx_msec_t) -1) {
            for (i = 0; i < NGX_HTTP_KROUTE_BUCKETS - 1; i++) {
                if (ms <= ngx_http_kroute_buckets[i]) {
                    break;
                }
            }

            w->response_time[i]++;
            w->response_time_ms_sum += ms;
            w->response_time_count++;
        }
    }

    if (ctx->route.ingress.len == 0) {
        return;
    }

    ingress = ngx_http_kroute_ingress_slot(ngx_http_kroute_shm_data,
                                           &ctx->route);
    if (ingress == NULL) {
        (void) ngx_atomic_fetch_add(
                         &ngx_http_kroute_shm_data->ingress_overflow[class], 1);
        return;
    }

    (void) ngx_atomic_fetch_add(&ingress->requests[class], 1);
}


/* FNV-1a over namespace, '/', name; never 0 (0 marks a free slot) */

static ngx_atomic_uint_t
ngx_http_kroute_ingress_hash(kroute_route_t *route)
{
    size_t    i;
    uint64_t  h;

    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < route->ns.len; i++) {
        h = (h ^ route->ns.data[i]) * 0x100000001b3ULL;
    }

    h = (h ^ '/') * 0x100000001b3ULL;

    for (i = 0; i < route->ingress.len; i++) {
        h = (h ^ route->ingress.data[i]) * 0x100000001b3ULL;
    }

    return (ngx_atomic_uint_t) (h ? h : 1);
}


static ngx_http_kroute_ingress_stats_t *
ngx_http_kroute_ingress_slot(ngx_http_kroute_shm_t *shm, kroute_route_t *route)
{
    size_t                            ns_len, name_len;
    ngx_uint_t                        i, n;
    ngx_atomic_uint_t                 hash;
    ngx_http_kroute_ingress_stats_t  *s;

    hash = ngx_http_kroute_ingress_hash(route);

    /* a bounded probe: a full table must not make every request slow */

    for (n = 0, i = hash % NGX_HTTP_KROUTE_MAX_INGRESSES;
         n < NGX_HTTP_KROUTE_INGRESS_PROBES;
         n++, i = (i + 1) % NGX_HTTP_KROUTE_MAX_INGRESSES)
    {
        s = &shm->ingresses[i];

        if (s->hash == hash) {
            return s;
        }

        if (s->hash != 0) {
            continue;
        }

        if (!ngx_atomic_cmp_set(&s->hash, 0, hash)) {
            if (s->hash == hash) {
                return s;
            }

            continue;
        }

        ns_len = ngx_min(route->ns.len, NGX_HTTP_KROUTE_NAME_LEN / 2);
        name_len = ngx_min(route->ingress.len,
                           NGX_HTTP_KROUTE_NAME_LEN - ns_len);

        ngx_memcpy(s->name, route->ns.data, ns_len);
        ngx_memcpy(s->name + ns_len, route->ingress.data, name_len);
        s->ns_len = ns_len;
        s->name_len = name_len;

        ngx_memory_barrier();
        s->ready = 1;

        return s;
    }

    return NULL;
}


/* kroute_status json|prometheus; */

char *
ngx_http_kroute_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_kroute_loc_conf_t *klcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (klcf->status) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "json") == 0) {
        klcf->status = NGX_HTTP_KROUTE_STATUS_JSON;

    } else if (ngx_strcmp(value[1].data, "prometheus") == 0) {
        klcf->status = NGX_HTTP_KROUTE_STATUS_PROMETHEUS;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid format \"%V\": "
                           "use \"json\" or \"prometheus\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_kroute_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_kroute_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_kroute_loc_conf_t   *klcf;
    ngx_http_kroute_status_out_t  out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_kroute_shm_data == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    klcf = ngx_http_get_module_loc_conf(r, ngx_http_kroute_module);

    out.pool = r->pool;
    out.first = NULL;
    out.next = &out.first;
    out.buf = NULL;
    out.size = 0;

    if (klcf->status == NGX_HTTP_KROUTE_STATUS_JSON) {
        ngx_str_set(&r->headers_out.content_type, "application/json");
        rc = ngx_http_kroute_status_json(&out, ngx_http_kroute_shm_data);

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        rc = ngx_http_kroute_status_prometheus(&out, ngx_http_kroute_shm_data);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.size + (out.buf->last - out.buf->pos);

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf->last_buf = (r == r->main) ? 1 : 0;
    out.buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out.first);
}


/*
 * At least len bytes to write at the returned pointer, up to out->buf->end:
 * the current buffer, or a new one linked after it.
 */

static u_char *
ngx_http_kroute_status_room(ngx_http_kroute_status_out_t *out, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = out->buf;

    if (b && (size_t) (b->end - b->last) >= len) {
        return b->last;
    }

    b = ngx_create_temp_buf(out->pool,
                            ngx_max(len, NGX_HTTP_KROUTE_STATUS_BUF_SIZE));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(out->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    if (out->buf) {
        out->size += out->buf->last - out->buf->pos;
    }

    *out->next = cl;
    out->next = &cl->next;
    out->buf = b;

    return b->last;
}


/* one row of at most NGX_HTTP_KROUTE_STATUS_ROW bytes */

static ngx_int_t
ngx_http_kroute_status_printf(ngx_http_kroute_status_out_t *out,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_kroute_status_room(out, NGX_HTTP_KROUTE_STATUS_ROW);
    if (p == NULL) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    out->buf->last = ngx_vslprintf(p, out->buf->end, fmt, args);
    va_end(args);

    return NGX_OK;
}


static uint64_t
ngx_http_kroute_now_unix_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


static ngx_int_t
ngx_http_kroute_status_json(ngx_http_kroute_status_out_t *out,
    ngx_http_kroute_shm_t *shm)
{
    u_char                          *p;
    size_t                           len;
    uint64_t                         now, age;
    ngx_int_t                        rc;
    ngx_uint_t                       i, first;
    ngx_http_kroute_worker_stats_t  *w;

    now = ngx_http_kroute_now_unix_ms();
    first = 1;

    if (ngx_http_kroute_status_printf(out, "{\"workers\":[") != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_KROUTE_MAX_WORKERS; i++) {
        w = &shm->workers[i];

        if (w->pid == 0) {
            continue;
        }

        if (ngx_http_kroute_status_printf(out,
                                          "%s{\"worker\":%ui,\"pid\":%uA,"
                                          "\"generation\":%uA,",
                                          first ? "" : ",", i, w->pid,
                                          w->generation)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        first = 0;

        if (w->generation) {
            age = now > w->built_unix_ms ? now - w->built_unix_ms : 0;
            rc = ngx_http_kroute_status_printf(out,
                                       "\"snapshotAgeSeconds\":%uL.%03uL,",
                                       age / 1000, age % 1000);

        } else {
            rc = ngx_http_kroute_status_printf(out,
                                               "\"snapshotAgeSeconds\":null,");
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_kroute_status_printf(out,
                                          "\"hosts\":%uA,\"routes\":%uA,"
                                          "\"backends\":%uA,\"endpoints\":%uA,"
                                          "\"pickups\":%uA,"
                                          "\"rejectedSnapshots\":%uA,"
                                          "\"regexMatchLimitHits\":%uA,"
                                          "\"certificatesParsed\":%uA,"
                                          "\"certificateFailures\":%uA,"
                                          "\"certificatesCached\":%uA,"
                                          "\"lastError\":\"",
                                          w->hosts, w->routes, w->backends,
                                          w->endpoints, w->pickups,
                                          w->rejections,
                                          w->regex_limit_hits,
                                          w->certificates_parsed,
                                          w->certificate_failures,
                                          w->certificates_cached)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /*
         * room for the worst case (every byte as \u00XX), not for what
         * ngx_escape_json() counts now: the worker may rewrite its error
         * meanwhile
         */

        len = ngx_min((size_t) w->last_error_len, NGX_HTTP_KROUTE_ERROR_LEN);

        p = ngx_http_kroute_status_room(out, 6 * len + sizeof("\"}") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        p = (u_char *) ngx_escape_json(p, w->last_error, len);

        out->buf->last = ngx_cpymem(p, "\"}", 2);
    }

    return ngx_http_kroute_status_printf(out, "]}\n");
}


static ngx_int_t
ngx_http_kroute_status_prometheus(ngx_http_kroute_status_out_t *out,
    ngx_http_kroute_shm_t *shm)
{
    u_char                           *p, *end;
    uint64_t                          now, age;
    ngx_int_t                         rc;
    ngx_uint_t                        i, c;
    ngx_atomic_uint_t                 n, sum, count;
    ngx_atomic_uint_t                 requests[NGX_HTTP_KROUTE_STATUS_CLASSES];
    ngx_atomic_uint_t                 buckets[NGX_HTTP_KROUTE_BUCKETS];
    ngx_http_kroute_worker_stats_t   *w;
    ngx_http_kroute_ingress_stats_t  *s;
    ngx_http_kroute_worker_metric_t  *m;

    ngx_memzero(requests, sizeof(requests));
    ngx_memzero(buckets, sizeof(buckets));
    sum = 0;
    count = 0;

    for (i = 0; i < NGX_HTTP_KROUTE_MAX_WORKERS; i++) {
        w = &shm->workers[i];

        for (c = 0; c < NGX_HTTP_KROUTE_STATUS_CLASSES; c++) {
            requests[c] += w->requests[c];
        }

        for (c = 0; c < NGX_HTTP_KROUTE_BUCKETS; c++) {
            buckets[c] += w->response_time[c];
        }

        sum += w->response_time_ms_sum;
        count += w->response_time_count;
    }

    if (ngx_http_kroute_status_printf(out,
            "# HELP kroute_requests_total Requests routed by kroute, "
            "by status class.\n"
            "# TYPE kroute_requests_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (c = 0; c < NGX_HTTP_KROUTE_STATUS_CLASSES; c++) {
        if (ngx_http_kroute_status_printf(out,
                                          "kroute_requests_total"
                                          "{class=\"%s\"} %uA\n",
                                          ngx_http_kroute_classes[c],
                                          requests[c])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_kroute_status_printf(out,
            "# HELP kroute_ingress_requests_total Requests by Ingress and "
            "status class.\n"
            "# TYPE kroute_ingress_requests_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* other workers may claim slots while this loop runs */

    for (i = 0; i < NGX_HTTP_KROUTE_MAX_INGRESSES; i++) {
        s = &shm->ingresses[i];

        if (!s->ready) {
            continue;
        }

        for (c = 0; c < NGX_HTTP_KROUTE_STATUS_CLASSES; c++) {
            n = s->requests[c];

            if (n == 0) {
                continue;
            }

            p = ngx_http_kroute_status_room(out, NGX_HTTP_KROUTE_STATUS_ROW);
            if (p == NULL) {
                return NGX_ERROR;
            }

            end = out->buf->end;

            p = ngx_slprintf(p, end,
                             "kroute_ingress_requests_total{namespace=\"");
            p = ngx_http_kroute_escape_label(p, end, s->name, s->ns_len);
            p = ngx_slprintf(p, end, "\",ingress=\"");
            p = ngx_http_kroute_escape_label(p, end, s->name + s->ns_len,
                                             s->name_len);
            out->buf->last = ngx_slprintf(p, end, "\",class=\"%s\"} %uA\n",
                                          ngx_http_kroute_classes[c], n);
        }
    }

    for (c = 0; c < NGX_HTTP_KROUTE_STATUS_CLASSES; c++) {
        if (shm->ingress_overflow[c]
            && ngx_http_kroute_status_printf(out,
                                    "kroute_ingress_requests_total"
                                    "{namespace=\"\",ingress=\"(overflow)\","
                                    "class=\"%s\"} %uA\n",
                                    ngx_http_kroute_classes[c],
                                    shm->ingress_overflow[c])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_kroute_status_printf(out,
            "# HELP kroute_upstream_response_seconds Upstream response time "
            "(the last attempt of each request).\n"
            "# TYPE kroute_upstream_response_seconds histogram\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = 0;

    for (c = 0; c < NGX_HTTP_KROUTE_BUCKETS - 1; c++) {
        n += buckets[c];

        if (ngx_http_kroute_status_printf(out,
                                          "kroute_upstream_response_seconds"
                                          "_bucket{le=\"%M.%03M\"} %uA\n",
                                          ngx_http_kroute_buckets[c] / 1000,
                                          ngx_http_kroute_buckets[c] % 1000,
                                          n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    n += buckets[NGX_HTTP_KROUTE_BUCKETS - 1];

    if (ngx_http_kroute_status_printf(out,
            "kroute_upstream_response_seconds_bucket{le=\"+Inf\"} %uA\n"
            "kroute_upstream_response_seconds_sum %uA.%03uA\n"
            "kroute_upstream_response_seconds_count %uA\n",
            n, sum / 1000, sum % 1000, count)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    now = ngx_http_kroute_now_unix_ms();

    for (m = ngx_http_kroute_worker_metrics; m->name; m++) {
        if (ngx_http_kroute_status_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
                                          m->name, m->help, m->name, m->type)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 0; i < NGX_HTTP_KROUTE_MAX_WORKERS; i++) {
            w = &shm->workers[i];

            if (w->pid == 0 || (m->age && w->generation == 0)) {
                continue;
            }

            n = *(ngx_atomic_t *) ((u_char *) w + m->offset);

            if (m->age) {
                age = now > n ? now - n : 0;
                rc = ngx_http_kroute_status_printf(out,
                                              "%s{worker=\"%ui\"} %uL.%03uL\n",
                                              m->name, i, age / 1000,
                                              age % 1000);

            } else {
                rc = ngx_http_kroute_status_printf(out,
                                                   "%s{worker=\"%ui\"} %uA\n",
                                                   m->name, i, n);
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/*
 * Prometheus label values: backslash, double quote and newline escaped;
 * stops at end
 */

static u_char *
ngx_http_kroute_escape_label(u_char *p, u_char *end, u_char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len && p < end; i++) {
        switch (s[i]) {

        case '\\':
        case '"':
        case '\n':
            if (end - p < 2) {
                return p;
            }

            *p++ = '\\';
            *p++ = (s[i] == '\n') ? 'n' : s[i];
            break;

        default:
            *p++ = s[i];
        }
    }

    return p;
}
