/*
 * ngx_http_kroute_client_cert_module: client certificate checks per request (kClientCert).
 * (Being written for issue 19: for now it registers nothing.)
 */

#include "ngx_http_kroute_module.h"


static ngx_http_module_t  ngx_http_kroute_client_cert_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_client_cert_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_client_cert_module_ctx,
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
