/*
 * kroute_ssl: TLS certificates from the route table, picked per handshake by
 * SNI in an OpenSSL certificate callback on the server's SSL_CTX, parsed once
 * per worker into a cache keyed by fingerprint. nginx's own certificate for
 * the server (ssl_certificate, or one kroute_ssl generates) is the fallback.
 */

#include "ngx_http_kroute_module.h"


#define NGX_HTTP_KROUTE_PEM_SIZE  4096


#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_kroute_ssl_generate(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf);
static int ngx_http_kroute_ssl_certificate(ngx_ssl_conn_t *ssl_conn,
    void *arg);
static void ngx_http_kroute_ssl_report(void *data, uint64_t fingerprint,
    const char *what, size_t len);
#endif


kroute_tls_cache_t  *ngx_http_kroute_tls_cache;


/* kroute_ssl on|off [cache=<number>]; */

char *
ngx_http_kroute_ssl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
#if (NGX_HTTP_SSL)
    ngx_http_kroute_srv_conf_t *kscf = conf;

    ngx_int_t                 n;
    ngx_str_t                *value;
    ngx_http_ssl_srv_conf_t  *sscf;

    if (kscf->ssl != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        kscf->ssl = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        kscf->ssl = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "cache=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(value[2].data + 6, value[2].len - 6);
        if (n == NGX_ERROR || n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid cache size \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        kscf->ssl_cache = n;
    }

    if (!kscf->ssl) {
        return NGX_CONF_OK;
    }

    /*
     * nginx wants a certificate for every "listen ... ssl"; without an
     * ssl_certificate above, the fallback is a self-signed one made now.
     */

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);

    if (sscf->certificates == NGX_CONF_UNSET_PTR
        || sscf->certificates == NULL)
    {
        if (ngx_http_kroute_ssl_generate(cf, sscf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        kscf->ssl_generated = 1;
    }

    return NGX_CONF_OK;

#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "kroute_ssl needs nginx built with "
                       "--with-http_ssl_module");
    return NGX_CONF_ERROR;
#endif
}


char *
ngx_http_kroute_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_kroute_srv_conf_t *prev = parent;
    ngx_http_kroute_srv_conf_t *conf = child;

#if (NGX_HTTP_SSL)
    ngx_http_ssl_srv_conf_t      *sscf;
    ngx_http_kroute_main_conf_t  *kmcf;
#endif

    /* not inherited: the fallback certificate belongs to one server */

    ngx_conf_init_value(conf->ssl, 0);
    ngx_conf_merge_uint_value(conf->ssl_cache, prev->ssl_cache,
                              NGX_HTTP_KROUTE_SSL_CACHE);

#if (NGX_HTTP_SSL)
    if (!conf->ssl) {
        return NGX_CONF_OK;
    }

    kmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_kroute_module);

    if (kmcf->dir.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_route\", \"kroute_status\" and "
                           "\"kroute_ssl\" need \"kroute_table\" in the http "
                           "block");
        return NGX_CONF_ERROR;
    }

    /* the ssl module's merge, which made the SSL_CTX, ran before this one */

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_ssl_module);

    if (conf->ssl_generated && sscf->certificates->nelts > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ssl_certificate\" must come before "
                           "\"kroute_ssl\" in the server block");
        return NGX_CONF_ERROR;
    }

    if (sscf->ssl.ctx == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"kroute_ssl\" found no SSL context in the "
                           "server block");
        return NGX_CONF_ERROR;
    }

    SSL_CTX_set_cert_cb(sscf->ssl.ctx, ngx_http_kroute_ssl_certificate, NULL);

    kmcf->ssl_cache = ngx_max(kmcf->ssl_cache, conf->ssl_cache);
#endif

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_kroute_ssl_init_process(ngx_cycle_t *cycle,
    ngx_http_kroute_main_conf_t *kmcf)
{
    if (kmcf->ssl_cache == 0) {
        return NGX_OK;
    }

    ngx_http_kroute_tls_cache = kroute_tls_cache_create(kmcf->ssl_cache);
    if (ngx_http_kroute_tls_cache == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "kroute: cannot create the certificate cache; "
                      "serving the fallback certificate only");
    }

    return NGX_OK;
}


void
ngx_http_kroute_ssl_exit_process(void)
{
    if (ngx_http_kroute_tls_cache) {
        kroute_tls_cache_destroy(ngx_http_kroute_tls_cache);
        ngx_http_kroute_tls_cache = NULL;
    }
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_kroute_ssl_generate(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf)
{
    ngx_str_t  *cert, *key;
    char        cert_pem[NGX_HTTP_KROUTE_PEM_SIZE];
    char        key_pem[NGX_HTTP_KROUTE_PEM_SIZE];

    if (kroute_tls_self_signed("kroute default certificate",
                               cert_pem, sizeof(cert_pem),
                               key_pem, sizeof(key_pem))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "kroute_ssl: cannot generate the fallback "
                           "certificate");
        return NGX_ERROR;
    }

    sscf->certificates = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
    sscf->certificate_keys = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
    if (sscf->certificates == NULL || sscf->certificate_keys == NULL) {
        return NGX_ERROR;
    }

    cert = ngx_array_push(sscf->certificates);
    key = ngx_array_push(sscf->certificate_keys);
    if (cert == NULL || key == NULL) {
        return NGX_ERROR;
    }

    /* nginx loads "data:" certificates and keys from memory */

    cert->len = sizeof("data:") - 1 + ngx_strlen(cert_pem);
    cert->data = ngx_pnalloc(cf->pool, cert->len + 1);
    key->len = sizeof("data:") - 1 + ngx_strlen(key_pem);
    key->data = ngx_pnalloc(cf->pool, key->len + 1);
    if (cert->data == NULL || key->data == NULL) {
        ngx_explicit_memzero(key_pem, sizeof(key_pem));
        return NGX_ERROR;
    }

    ngx_sprintf(cert->data, "data:%s%Z", cert_pem);
    ngx_sprintf(key->data, "data:%s%Z", key_pem);

    ngx_explicit_memzero(key_pem, sizeof(key_pem));

    return NGX_OK;
}


static int
ngx_http_kroute_ssl_certificate(ngx_ssl_conn_t *ssl_conn, void *arg)
{
    int                  client;
    size_t               len;
    uint16_t             scope;
    const char          *name, *problem;
    ngx_connection_t    *c;
    kroute_snapshot_t   *snapshot;
    kroute_tls_choice_e  choice;

    if (ngx_http_kroute_table == NULL || ngx_http_kroute_tls_cache == NULL) {
        return 1;
    }

    c = ngx_ssl_get_connection(ssl_conn);

    name = SSL_get_servername(ssl_conn, TLSEXT_NAMETYPE_host_name);
    len = name ? ngx_strlen(name) : 0;

    ngx_http_kroute_poll(c->log);

    snapshot = kroute_table_pin(ngx_http_kroute_table);
    if (snapshot == NULL) {
        return 1;
    }

    /* the hosts of the scope the connection's local address chose */

    scope = kroute_snapshot_scope(snapshot, c->local_sockaddr);

    choice = kroute_tls_select(ngx_http_kroute_tls_cache, snapshot,
                               (const u_char *) name, len, scope, ssl_conn,
                               ngx_http_kroute_ssl_report, c);

    /* the host's client certificates (auth-tls-*): never an open handshake */

    client = kroute_tls_client_verify(ngx_http_kroute_tls_cache, snapshot,
                                      (const u_char *) name, len, scope,
                                      ssl_conn, &problem);

    kroute_table_unpin(ngx_http_kroute_table, snapshot);

    if (client != 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "kroute: handshake for \"%s\" refused: the host's "
                      "client certificate CA is unusable: %s",
                      name ? name : "", problem);
        return 0;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "kroute: certificate for \"%s\" in scope %ui: %s",
                   name ? name : "", (ngx_uint_t) scope,
                   choice == KROUTE_TLS_HOST ? "host"
                   : choice == KROUTE_TLS_DEFAULT ? "a default"
                   : "fallback");

    /* otherwise never fail the handshake: the fallback certificate serves */

    return 1;
}


/*
 * An unusable certificate: logged as an error by the first worker that
 * parses it, at "info" by the others. The text names the Secret and host and
 * OpenSSL's reason, never key material.
 *
 * Which fingerprints were logged is an open-addressed set in shared memory:
 * a fingerprint takes the first free slot from its home slot on, so two
 * certificates never push each other out (a direct-mapped slot did, and both
 * were then logged again by the next worker). When every slot is taken, a
 * new certificate is logged by each worker that parses it.
 */

static void
ngx_http_kroute_ssl_report(void *data, uint64_t fingerprint, const char *what,
    size_t len)
{
    ngx_connection_t *c = data;

    ngx_uint_t              level, i;
    ngx_atomic_t           *slot;
    ngx_atomic_uint_t       key;
    ngx_http_kroute_shm_t  *shm;

    level = NGX_LOG_ERR;
    shm = ngx_http_kroute_shm();

    if (shm) {
        key = (ngx_atomic_uint_t) fingerprint | 1;

        for (i = 0; i < NGX_HTTP_KROUTE_LOGGED_CERTS; i++) {
            slot = &shm->logged_certificates[(fingerprint + i)
                                             % NGX_HTTP_KROUTE_LOGGED_CERTS];

            if (*slot == 0 && ngx_atomic_cmp_set(slot, 0, key)) {
                break;                          /* first to log it */
            }

            if (*slot == key) {
                level = NGX_LOG_INFO;           /* another worker did */
                break;
            }
        }
    }

    ngx_log_error(level, c->log, 0,
                  "kroute: %*s (fingerprint %016xL); that host gets the "
                  "default certificate", len, what, fingerprint);
}

#endif
