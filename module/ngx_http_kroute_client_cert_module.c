/*
 * ngx_http_kroute_client_cert_module: client certificates per request
 * (kClientCert host records, routetable/policy/client_cert.h; ingress-nginx's
 * auth-tls-* annotations). The handshake already asked for the certificate
 * and kept OpenSSL's verdict (kroute_tls_client_verify in kroute_tls.cc);
 * here every https request of the host is answered by it as nginx's
 * ssl_verify_client would: 400 for a missing (on) or failed certificate,
 * or a 302 to the record's error page instead; 403 when the subject does
 * not match match-cn; 421 when the connection's handshake was not made
 * under this record (SNI named another host, or the CA changed since).
 * Its variables are what goes upstream (nginx.conf: ssl-client-* headers).
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_client_cert_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_client_cert_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_client_cert_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_client_cert_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_KROUTE_CLIENT_VERIFY   0
#define NGX_HTTP_KROUTE_CLIENT_S_DN     1
#define NGX_HTTP_KROUTE_CLIENT_I_DN     2
#define NGX_HTTP_KROUTE_CLIENT_CERT     3

/* routetable/policy/client_cert.h */
#define NGX_HTTP_KROUTE_VERIFY_MASK            3
#define NGX_HTTP_KROUTE_VERIFY_OFF             0
#define NGX_HTTP_KROUTE_VERIFY_ON              1
#define NGX_HTTP_KROUTE_VERIFY_OPTIONAL_NO_CA  3
#define NGX_HTTP_KROUTE_PASS_CERTIFICATE       4
/* `b` starts with the record's digest, in hex */
#define NGX_HTTP_KROUTE_DIGEST_LEN             (2 * KROUTE_CLIENT_CERT_MARK_LEN)


static ngx_http_module_t  ngx_http_kroute_client_cert_module_ctx = {
    ngx_http_kroute_client_cert_add_variables, /* preconfiguration */
    ngx_http_kroute_client_cert_init,      /* postconfiguration */

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


static ngx_http_variable_t  ngx_http_kroute_client_cert_vars[] = {

    { ngx_string("kroute_ssl_client_verify"), NULL,
      ngx_http_kroute_client_cert_variable, NGX_HTTP_KROUTE_CLIENT_VERIFY,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_ssl_client_s_dn"), NULL,
      ngx_http_kroute_client_cert_variable, NGX_HTTP_KROUTE_CLIENT_S_DN,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_ssl_client_i_dn"), NULL,
      ngx_http_kroute_client_cert_variable, NGX_HTTP_KROUTE_CLIENT_I_DN,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("kroute_ssl_client_escaped_cert"), NULL,
      ngx_http_kroute_client_cert_variable, NGX_HTTP_KROUTE_CLIENT_CERT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_kroute_client_cert_add_variables(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_module_variables(cf,
                                            ngx_http_kroute_client_cert_vars);
}


static ngx_int_t
ngx_http_kroute_client_cert_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                         ngx_http_kroute_client_cert_handler);
}


/* The host's kClientCert record for an https request, or NULL. */

static const kroute_policy_t *
ngx_http_kroute_client_cert_record(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t **pctx)
{
    ngx_http_kroute_ctx_t  *ctx;

    *pctx = NULL;

#if (NGX_HTTP_SSL)
    if (r->connection->ssl == NULL || !ngx_http_kroute_routes(r)) {
        return NULL;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL || ctx->route.host_policy_count == 0) {
        return NULL;
    }

    *pctx = ctx;

    return kroute_policy_find(ctx->route.host_policies,
                              ctx->route.host_policy_count,
                              KROUTE_POLICY_CLIENT_CERT);
#else
    (void) ctx;
    return NULL;
#endif
}


#if (NGX_HTTP_SSL)

/* 400 as nginx answers it (status 495 or 496), or the error page's 302. */

static ngx_int_t
ngx_http_kroute_client_cert_refuse(ngx_http_request_t *r,
    ngx_http_kroute_ctx_t *ctx, const kroute_policy_t *record,
    ngx_int_t status, const char *why)
{
    size_t            page_len;
    kroute_str_t      b;
    ngx_str_t         page;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "kroute: client certificate refused: %s", why);

    b = kroute_policy_str(&ctx->route, record->b);
    page_len = (size_t) (record->value >> 32);

    if (page_len == 0 || NGX_HTTP_KROUTE_DIGEST_LEN + page_len > b.len) {
        return status;
    }

    page.data = (u_char *) b.data + NGX_HTTP_KROUTE_DIGEST_LEN;
    page.len = page_len;

    return ngx_http_kroute_send_location(r, NGX_HTTP_MOVED_TEMPORARILY, &page);
}

#endif


static ngx_int_t
ngx_http_kroute_client_cert_handler(ngx_http_request_t *r)
{
#if (NGX_HTTP_SSL)
    long                    rc;
    size_t                  skip;
    X509                   *cert;
    ngx_str_t               subject;
    ngx_uint_t              mode;
    kroute_str_t            b, pattern, value;
    unsigned int            id_len;
    const unsigned char    *id;
    const kroute_policy_t  *record;
    ngx_http_kroute_ctx_t  *ctx;
    u_char                  mark[KROUTE_CLIENT_CERT_MARK_LEN];
    SSL_SESSION            *session;
    ngx_ssl_conn_t         *ssl_conn;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    /*
     * Plain http is not checked, as ingress-nginx's ssl_verify_client only
     * sees TLS connections: ssl-redirect sends such requests to https.
     */

    record = ngx_http_kroute_client_cert_record(r, &ctx);
    if (record == NULL) {
        return NGX_DECLINED;
    }

    ssl_conn = r->connection->ssl->connection;
    mode = record->flags & NGX_HTTP_KROUTE_VERIFY_MASK;

    if (mode != NGX_HTTP_KROUTE_VERIFY_OFF) {

        /* only a handshake under this very record counts */

        session = SSL_get0_session(ssl_conn);
        id = session ? SSL_SESSION_get0_id_context(session, &id_len) : NULL;

        if (kroute_client_cert_mark(&ctx->route, record, mark) != 0
            || id == NULL || id_len != KROUTE_CLIENT_CERT_MARK_LEN
            || ngx_memcmp(id, mark, KROUTE_CLIENT_CERT_MARK_LEN) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "kroute: the TLS handshake did not ask for this "
                          "host's client certificate (the client's SNI "
                          "named another host, it resumed another host's "
                          "session, or the CA changed since)");
            return NGX_HTTP_MISDIRECTED_REQUEST;
        }

        rc = SSL_get_verify_result(ssl_conn);

        if (rc != X509_V_OK
            && (mode != NGX_HTTP_KROUTE_VERIFY_OPTIONAL_NO_CA
                || !ngx_ssl_verify_error_optional(rc)))
        {
            return ngx_http_kroute_client_cert_refuse(r, ctx, record,
                                                      NGX_HTTPS_CERT_ERROR,
                                      X509_verify_cert_error_string(rc));
        }

        if (mode == NGX_HTTP_KROUTE_VERIFY_ON) {
            cert = SSL_get_peer_certificate(ssl_conn);
            if (cert == NULL) {
                return ngx_http_kroute_client_cert_refuse(r, ctx, record,
                                                         NGX_HTTPS_NO_CERT,
                                                         "none was sent");
            }

            X509_free(cert);
        }
    }

    b = kroute_policy_str(&ctx->route, record->b);
    skip = NGX_HTTP_KROUTE_DIGEST_LEN + (size_t) (record->value >> 32);

    if (skip < b.len) {
        pattern.data = b.data + skip;
        pattern.len = b.len - skip;

        if (ngx_ssl_get_subject_dn(r->connection, r->pool, &subject)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.data = subject.data;
        value.len = subject.len;

        if (ngx_http_kroute_table == NULL
            || !kroute_table_match_value(ngx_http_kroute_table, pattern,
                                         value))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "kroute: client certificate subject \"%V\" does "
                          "not match auth-tls-match-cn", &subject);
            return NGX_HTTP_FORBIDDEN;
        }
    }
#endif

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_kroute_client_cert_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
#if (NGX_HTTP_SSL)
    ngx_str_t               s;
    ngx_int_t               rc;
    const kroute_policy_t  *record;
    ngx_http_kroute_ctx_t  *ctx;

    record = ngx_http_kroute_client_cert_record(r->main, &ctx);

    if (record == NULL
        || (data == NGX_HTTP_KROUTE_CLIENT_CERT
            && !(record->flags & NGX_HTTP_KROUTE_PASS_CERTIFICATE)))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {
    case NGX_HTTP_KROUTE_CLIENT_VERIFY:
        rc = ngx_ssl_get_client_verify(r->connection, r->pool, &s);
        break;
    case NGX_HTTP_KROUTE_CLIENT_S_DN:
        rc = ngx_ssl_get_subject_dn(r->connection, r->pool, &s);
        break;
    case NGX_HTTP_KROUTE_CLIENT_I_DN:
        rc = ngx_ssl_get_issuer_dn(r->connection, r->pool, &s);
        break;
    default:
        rc = ngx_ssl_get_escaped_certificate(r->connection, r->pool, &s);
        break;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    v->len = s.len;
    v->data = s.data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
#else
    v->not_found = 1;
    return NGX_OK;
#endif
}
