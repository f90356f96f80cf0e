/*
 * ngx_http_kroute_auth_basic_module: HTTP basic authentication from the
 * route's kBasicAuth record (routetable/policy/basic_auth.h), as nginx's
 * auth_basic does it with a user file: the record's "user:hash" lines are
 * the file (the agent checked them), the first line of the user decides, and
 * the password is verified with nginx's ngx_crypt (bcrypt and the other
 * crypt(3) hashes, apr1, {SHA}, {SSHA}, {PLAIN}). No or wrong credentials:
 * 401 with WWW-Authenticate: Basic realm="<b>". Access phase (nginx runs it
 * for the main request only), after the allow/deny lists.
 */

#include "ngx_http_kroute_module.h"

#include <ngx_crypt.h>


static ngx_int_t ngx_http_kroute_auth_basic_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_auth_basic_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_auth_basic_check(ngx_http_request_t *r,
    kroute_str_t users);
static ngx_int_t ngx_http_kroute_auth_basic_challenge(ngx_http_request_t *r,
    kroute_str_t realm);


static ngx_http_module_t  ngx_http_kroute_auth_basic_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_auth_basic_init,       /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_auth_basic_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_auth_basic_module_ctx, /* module context */
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


static ngx_int_t
ngx_http_kroute_auth_basic_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_ACCESS_PHASE,
                                             ngx_http_kroute_auth_basic_handler);
}


static ngx_int_t
ngx_http_kroute_auth_basic_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    const kroute_policy_t  *auth;
    ngx_http_kroute_ctx_t  *ctx;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.policy_count == 0) {
        return NGX_DECLINED;
    }

    auth = kroute_policy_find(ctx->route.policies, ctx->route.policy_count,
                              KROUTE_POLICY_BASIC_AUTH);
    if (auth == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_auth_basic_user(r);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "kroute: no user/password was provided for basic "
                      "authentication");

        return ngx_http_kroute_auth_basic_challenge(r,
                   kroute_policy_str(&ctx->route, auth->b));
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_kroute_auth_basic_check(r,
             kroute_policy_str(&ctx->route, auth->a));

    if (rc == NGX_DECLINED) {
        return ngx_http_kroute_auth_basic_challenge(r,
                   kroute_policy_str(&ctx->route, auth->b));
    }

    return rc;
}


/*
 * NGX_OK: the user's password matches; NGX_DECLINED: unknown user or wrong
 * password (logged with the user name, never a hash); else a status.
 */

static ngx_int_t
ngx_http_kroute_auth_basic_check(ngx_http_request_t *r, kroute_str_t users)
{
    u_char        *p, *end, *line, *colon, *salt, *encrypted;
    size_t         n;
    ngx_int_t      rc;
    ngx_str_t     *user;

    user = &r->headers_in.user;
    p = (u_char *) users.data;
    end = p + users.len;

    while (p < end) {
        line = p;
        p = ngx_strlchr(line, end, '\n');
        if (p == NULL) {
            p = end;
        }

        colon = ngx_strlchr(line, p, ':');

        if (colon == NULL
            || (size_t) (colon - line) != user->len
            || ngx_memcmp(line, user->data, user->len) != 0)
        {
            p++;
            continue;
        }

        /* ngx_crypt wants the hash as a C string, in the request's pool */

        n = p - (colon + 1);
        salt = ngx_pnalloc(r->pool, n + 1);
        if (salt == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(salt, colon + 1, n);
        salt[n] = '\0';

        rc = ngx_crypt(r->pool, r->headers_in.passwd.data, salt, &encrypted);

        if (rc != NGX_OK) {
            ngx_explicit_memzero(salt, n);
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kroute: user \"%V\": the password hash could "
                          "not be computed", user);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_strcmp(encrypted, salt) == 0 ? NGX_OK : NGX_DECLINED;

        ngx_explicit_memzero(salt, n);

        if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "kroute: user \"%V\": password mismatch", user);
        }

        return rc;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "kroute: user \"%V\" was not found", user);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_kroute_auth_basic_challenge(ngx_http_request_t *r, kroute_str_t realm)
{
    size_t            len;
    u_char           *basic, *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the agent allows no '"' or '\' in a realm; escaped all the same */

    len = sizeof("Basic realm=\"\"") - 1 + 2 * realm.len;

    basic = ngx_pnalloc(r->pool, len);
    if (basic == NULL) {
        h->hash = 0;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(basic, "Basic realm=\"", sizeof("Basic realm=\"") - 1);

    for (len = 0; len < realm.len; len++) {
        if (realm.data[len] == '"' || realm.data[len] == '\\') {
            *p++ = '\\';
        }

        *p++ = realm.data[len] < 0x20 || realm.data[len] == 0x7f
               ? ' ' : realm.data[len];
    }

    *p++ = '"';

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = basic;
    h->value.len = p - basic;

    r->headers_out.www_authenticate = h;

    return NGX_HTTP_UNAUTHORIZED;
}
