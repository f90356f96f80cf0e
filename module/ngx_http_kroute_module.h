/*
 * ngx_http_kroute_module: routes every request from the kroute route table (a
 * snapshot published by the agent into a directory, mapped by each worker)
 * and picks the pod endpoint itself, without reloads. Shared by the module's
 * files: the router (ngx_http_kroute_module.c), the upstream balancer
 * (ngx_http_kroute_balancer.c), the status/metrics location
 * (ngx_http_kroute_status.c), the TLS certificate callback
 * (ngx_http_kroute_ssl.c) and one module per kind of policy record
 * (ngx_http_kroute_redirect_module.c, ngx_http_kroute_rewrite_module.c,
 * ngx_http_kroute_proxy_module.c,
 * ngx_http_kroute_headers_module.c, ngx_http_kroute_error_pages_module.c,
 * ngx_http_kroute_mirror_module.c, ngx_http_kroute_canary_module.c,
 * ngx_http_kroute_protocol_module.c, and for who may pass
 * ngx_http_kroute_deny_module.c, ngx_http_kroute_access_module.c,
 * ngx_http_kroute_auth_basic_module.c, ngx_http_kroute_auth_request_module.c,
 * ngx_http_kroute_client_cert_module.c, ngx_http_kroute_cors_module.c,
 * ngx_http_kroute_limit_module.c; for the Gateway API
 * ngx_http_kroute_split_module.c, ngx_http_kroute_request_header_module.c,
 * ngx_http_kroute_response_header_module.c, and before every other policy
 * ngx_http_kroute_server_name_module.c).
 */

#ifndef _NGX_HTTP_KROUTE_MODULE_H_INCLUDED_
#define _NGX_HTTP_KROUTE_MODULE_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "kroute_table.h"
#include "kroute_tls.h"


#define NGX_HTTP_KROUTE_MAX_WORKERS      64
#define NGX_HTTP_KROUTE_MAX_INGRESSES    16384
/* probes for an Ingress's counters; then the request counts as overflow */
#define NGX_HTTP_KROUTE_INGRESS_PROBES   16
#define NGX_HTTP_KROUTE_NAME_LEN         160
#define NGX_HTTP_KROUTE_ERROR_LEN        384
#define NGX_HTTP_KROUTE_STATUS_CLASSES   6      /* 1xx..5xx, anything else */
#define NGX_HTTP_KROUTE_BUCKETS          12     /* the last one is +Inf */
/* fingerprints of unusable certificates recently logged as errors */
#define NGX_HTTP_KROUTE_LOGGED_CERTS     256
/* parsed certificates each worker keeps by default (kroute_ssl cache=N) */
#define NGX_HTTP_KROUTE_SSL_CACHE        1000


/*
 * One worker's view, written only by that worker, read by the status location
 * in any worker.
 */
typedef struct {
    ngx_atomic_t                  pid;
    ngx_atomic_t                  generation;
    ngx_atomic_t                  built_unix_ms;
    ngx_atomic_t                  hosts;
    ngx_atomic_t                  routes;
    ngx_atomic_t                  backends;
    ngx_atomic_t                  endpoints;
    ngx_atomic_t                  pickups;
    ngx_atomic_t                  rejections;
    ngx_atomic_t                  regex_limit_hits;
    ngx_atomic_t                  certificates_parsed;
    ngx_atomic_t                  certificate_failures;
    ngx_atomic_t                  certificates_cached;
    /* ngx_http_kroute_limit_module: requests refused, zone full */
    ngx_atomic_t                  limited_requests;
    ngx_atomic_t                  limited_connections;
    ngx_atomic_t                  limit_zone_full;
    ngx_atomic_t                  requests[NGX_HTTP_KROUTE_STATUS_CLASSES];
    ngx_atomic_t                  response_time[NGX_HTTP_KROUTE_BUCKETS];
    ngx_atomic_t                  response_time_ms_sum;
    ngx_atomic_t                  response_time_count;
    ngx_atomic_t                  last_error_len;
    u_char                        last_error[NGX_HTTP_KROUTE_ERROR_LEN];
} ngx_http_kroute_worker_stats_t;

/*
 * Requests per Ingress, shared by all workers: a slot is claimed once (hash
 * CAS) and never freed.
 */
typedef struct {
    ngx_atomic_t                  hash;        /* 0: free */
    ngx_atomic_t                  ready;       /* the name is written */
    ngx_atomic_t                  requests[NGX_HTTP_KROUTE_STATUS_CLASSES];
    size_t                        ns_len;
    size_t                        name_len;
    /* the namespace, then the name */
    u_char                        name[NGX_HTTP_KROUTE_NAME_LEN];
} ngx_http_kroute_ingress_stats_t;

typedef struct {
    /* a checksum of the last refusal logged as an error, so it is logged once */
    ngx_atomic_t                  logged_rejection;
    /* the same for unusable certificates, by fingerprint */
    ngx_atomic_t         logged_certificates[NGX_HTTP_KROUTE_LOGGED_CERTS];
    ngx_atomic_t         ingress_overflow[NGX_HTTP_KROUTE_STATUS_CLASSES];
    ngx_http_kroute_worker_stats_t    workers[NGX_HTTP_KROUTE_MAX_WORKERS];
    ngx_http_kroute_ingress_stats_t   ingresses[NGX_HTTP_KROUTE_MAX_INGRESSES];
} ngx_http_kroute_shm_t;


typedef struct {
    ngx_str_t                     dir;          /* kroute_table */
    ngx_msec_t                    refresh;
    ngx_shm_zone_t               *shm_zone;
    ngx_uint_t                    ssl_cache;    /* the largest kroute_ssl cache= */
} ngx_http_kroute_main_conf_t;

typedef struct {
    ngx_msec_t                    fail_timeout; /* kroute_balancer */
    ngx_flag_t                    ssl;          /* kroute_ssl */
    ngx_uint_t                    ssl_cache;
    /* kroute_ssl made this server's fallback certificate itself */
    unsigned                      ssl_generated:1;
} ngx_http_kroute_srv_conf_t;

typedef struct {
    ngx_flag_t                    route;        /* kroute_route */
    ngx_uint_t                    status;       /* kroute_status */
} ngx_http_kroute_loc_conf_t;

/*
 * The route of one request: filled once, by the phase handler or the
 * balancer, whichever runs first.
 */
typedef struct {
    kroute_snapshot_t            *snapshot;     /* pinned: see route_request */
    kroute_route_t                route;
    uint64_t                      generation;
    uint16_t                      scope;        /* the connection's */
    ngx_int_t                     status;       /* 0: routed; else 404 or 503 */
    ngx_str_t                     path;         /* the URI looked up */
    /* per-request copies of location-wide settings, see below */
    void                        **loc_conf;
    ngx_http_upstream_conf_t     *upstream_conf;
    unsigned                      rewritten:1;  /* the rewrite policy ran */
    /* error pages take the Service's answers with their statuses too */
    unsigned                      intercept_errors:1;
    unsigned                      mirrored:1;   /* the mirror copy is made */
    unsigned                      canary_done:1;  /* the canary policy ran */
    unsigned                      canary:1;     /* route.backend is a canary's */
    /* the balancer chose a session: the response sets its cookie */
    unsigned                      set_cookie:1;
    /* tries may go to a failed endpoint again once all failed (proxy module) */
    unsigned                      retry_repeat:1;
    const kroute_policy_t        *affinity;     /* the session's kAffinity */
    uint64_t                      cookie_value;
    unsigned                      protocol:1;   /* the protocol policy ran */
    unsigned                      split_done:1; /* the split policy chose */
    /* the request header records are applied */
    unsigned                      request_headers_done:1;
} ngx_http_kroute_ctx_t;


#define NGX_HTTP_KROUTE_STATUS_JSON        1
#define NGX_HTTP_KROUTE_STATUS_PROMETHEUS  2


extern ngx_module_t  ngx_http_kroute_module;
extern kroute_table_t  *ngx_http_kroute_table;
extern kroute_tls_cache_t  *ngx_http_kroute_tls_cache;


ngx_http_kroute_ctx_t *ngx_http_kroute_route_request(ngx_http_request_t *r);
/* Whether kroute routes this request's location (kroute_route on). */
ngx_int_t ngx_http_kroute_routes(ngx_http_request_t *r);
/* Whether the request came over https (or says so, when trusted). */
ngx_uint_t ngx_http_kroute_https(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);
/* What templates in policy records (routetable/policy/template.h) see. */
void ngx_http_kroute_template_ctx(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, kroute_template_ctx_t *tctx);
/* A record's template expanded into the request's pool: NGX_OK or NGX_ERROR. */
ngx_int_t ngx_http_kroute_expand(ngx_http_request_t *r, kroute_str_t text,
    kroute_template_ctx_t *tctx, ngx_str_t *out);
/*
 * Answers `code` with Location `value` (in the request's pool or the pinned
 * snapshot): returns `code`, or 500 when the header cannot be added.
 */
ngx_int_t ngx_http_kroute_send_location(ngx_http_request_t *r,
    ngx_uint_t code, ngx_str_t *value);
void ngx_http_kroute_poll(ngx_log_t *log);
/*
 * Registers a module's handler in a phase (policy modules: see module/config
 * for the order their rewrite-phase handlers run in).
 */
ngx_int_t ngx_http_kroute_add_phase_handler(ngx_conf_t *cf,
    ngx_http_phases phase, ngx_http_handler_pt handler);
/* Adds a module's variables (a list ending with ngx_http_null_variable). */
ngx_int_t ngx_http_kroute_add_module_variables(ngx_conf_t *cf,
    ngx_http_variable_t *vars);
/*
 * Location-wide settings a route overrides (docs/module.md): a copy for
 * this request only, made on first use in the current location and kept
 * until nginx switches the request to another location or upstream; NULL
 * when out of memory. Policy modules change their fields on the copy.
 */
ngx_http_core_loc_conf_t *ngx_http_kroute_core_loc_conf(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);
ngx_http_upstream_conf_t *ngx_http_kroute_upstream_conf(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);

/*
 * The route's upstream settings (kProxySetting records: timeouts,
 * proxy-next-upstream, buffers), applied by the balancer's init_peer.
 */
ngx_int_t ngx_http_kroute_proxy_upstream(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);

/*
 * Called by the balancer's init_peer, for the error pages module
 * (ngx_http_kroute_error_pages_module.c) to change this request's upstream
 * settings; NGX_ERROR when out of memory.
 */
ngx_int_t ngx_http_kroute_error_pages_upstream(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);

/*
 * Sets up a new TLS connection to the backend as the route's kProtocol
 * record asks (SNI, versions, verification, client certificate); the
 * balancer calls it before the handshake. NGX_ERROR: the record is unusable.
 */
ngx_int_t ngx_http_kroute_protocol_tls(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, ngx_connection_t *c);

char *ngx_http_kroute_ssl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_kroute_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
ngx_int_t ngx_http_kroute_ssl_init_process(ngx_cycle_t *cycle,
    ngx_http_kroute_main_conf_t *kmcf);
void ngx_http_kroute_ssl_exit_process(void);

void *ngx_http_kroute_create_srv_conf(ngx_conf_t *cf);
char *ngx_http_kroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/*
 * The kAffinity or kBalance record that applies to the request's backend
 * now (a canary's own, or the rule's when the primary serves), or NULL.
 */
const kroute_policy_t *ngx_http_kroute_backend_policy(
    ngx_http_kroute_ctx_t *ctx, uint16_t kind);
/*
 * The first header of a request's or response's list named `name` (any
 * case) that is not deleted (hash 0), or NULL.
 */
ngx_table_elt_t *ngx_http_kroute_find_header(ngx_list_t *headers,
    const u_char *name, size_t len);
/*
 * Deletes every response header named `name` (any case): nginx's header
 * filters skip a header whose hash is 0.
 */
void ngx_http_kroute_clear_headers(ngx_list_t *headers, const u_char *name,
    size_t len);
/* The value of cookie `name` in the request, or NULL. */
ngx_str_t *ngx_http_kroute_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value);

char *ngx_http_kroute_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_kroute_init_shm_zone(ngx_shm_zone_t *shm_zone, void *data);
ngx_http_kroute_shm_t *ngx_http_kroute_shm(void);
/* This worker's stats slot (its own to write), or NULL. */
ngx_http_kroute_worker_stats_t *ngx_http_kroute_worker_stats(void);
void ngx_http_kroute_publish_stats(ngx_log_t *log);
void ngx_http_kroute_count_request(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx);


#endif /* _NGX_HTTP_KROUTE_MODULE_H_INCLUDED_ */
