/*
 * ngx_http_kroute_request_header_module: the route's kRequestHeader records
 * (routetable/policy/header_modifier.h: the Gateway API's
 * RequestHeaderModifier), applied in order to r->headers_in before the
 * request is proxied: set replaces every header of the name, add pushes one
 * more, remove deletes them all. Names match in any case. The proxy module
 * sends r->headers_in.headers, and nginx keeps pointers to known headers
 * (r->headers_in.host, user_agent, the cookies array, ...): a deleted header
 * is taken out of the list and every such pointer is moved with the headers
 * after it, or cleared; a new known header is pointed to when nothing was.
 * Headers nginx.conf sets with proxy_set_header are still set by it (Host
 * follows the changed Host header: $kroute_upstream_host reads it). Rewrite
 * phase, once per request, before the router's last word, after the split
 * choice: a record with a backend (one backendRef's filter) applies only
 * when the request goes to that backend.
 */

#include "ngx_http_kroute_module.h"


static ngx_int_t ngx_http_kroute_request_header_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_kroute_request_header_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_kroute_request_header_add(ngx_http_request_t *r,
    kroute_str_t name, kroute_str_t value);
static ngx_uint_t ngx_http_kroute_request_header_remove(ngx_http_request_t *r,
    kroute_str_t name, ngx_table_elt_t *keep);
static void ngx_http_kroute_request_header_delete(ngx_http_request_t *r,
    ngx_list_part_t *part, ngx_uint_t i);
static ngx_int_t ngx_http_kroute_known_header(ngx_http_request_t *r,
    kroute_str_t name, ngx_table_elt_t *h);
static ngx_uint_t ngx_http_kroute_header_list_offset(ngx_uint_t offset);


static u_char *ngx_http_kroute_request_header_copy(ngx_http_request_t *r,
    kroute_str_t s);


static ngx_http_module_t  ngx_http_kroute_request_header_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_kroute_request_header_init,   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_kroute_request_header_module = {
    NGX_MODULE_V1,
    &ngx_http_kroute_request_header_module_ctx, /* module context */
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
ngx_http_kroute_request_header_init(ngx_conf_t *cf)
{
    return ngx_http_kroute_add_phase_handler(cf, NGX_HTTP_REWRITE_PHASE,
                                    ngx_http_kroute_request_header_handler);
}


static ngx_int_t
ngx_http_kroute_request_header_handler(ngx_http_request_t *r)
{
    uint32_t                i;
    kroute_str_t            name, value;
    ngx_table_elt_t        *kept;
    ngx_http_kroute_ctx_t  *ctx;
    const kroute_policy_t  *p;

    if (!ngx_http_kroute_routes(r)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_kroute_route_request(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a named location or error_page runs the phase again: change once */

    if (ctx->request_headers_done || ctx->route.policy_count == 0
        || r != r->main)
    {
        return NGX_DECLINED;
    }

    ctx->request_headers_done = 1;

    for (i = 0; i < ctx->route.policy_count; i++) {
        p = &ctx->route.policies[i];

        if (p->kind != KROUTE_POLICY_REQUEST_HEADER
            || (p->backend != KROUTE_NO_BACKEND
                && p->backend != ctx->route.backend))
        {
            continue;
        }

        name = kroute_policy_str(&ctx->route, p->a);
        value = kroute_policy_str(&ctx->route, p->b);

        switch (p->code) {

        case KROUTE_HEADER_SET:

            /* the first header of the name takes the value, the rest go */

            kept = ngx_http_kroute_find_header(&r->headers_in.headers,
                                               name.data, name.len);
            if (kept == NULL) {
                if (ngx_http_kroute_request_header_add(r, name, value)
                    != NGX_OK)
                {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                break;
            }

            kept->value.data = ngx_http_kroute_request_header_copy(r, value);
            if (kept->value.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            kept->value.len = value.len;

            (void) ngx_http_kroute_request_header_remove(r, name, kept);
            break;

        case KROUTE_HEADER_ADD:
            if (ngx_http_kroute_request_header_add(r, name, value) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            break;

        default: /* KROUTE_HEADER_REMOVE */
            (void) ngx_http_kroute_request_header_remove(r, name, NULL);
            break;
        }
    }

    return NGX_DECLINED;
}


/*
 * One more header, its name and value copied into the request's pool (nginx
 * may treat a request's headers as its own to change), with the lowercase
 * name the proxy module hashes.
 */

static ngx_int_t
ngx_http_kroute_request_header_add(ngx_http_request_t *r, kroute_str_t name,
    kroute_str_t value)
{
    ngx_table_elt_t   *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->lowcase_key = ngx_pnalloc(r->pool, name.len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->key.data = ngx_http_kroute_request_header_copy(r, name);
    h->value.data = ngx_http_kroute_request_header_copy(r, value);
    if (h->key.data == NULL || h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->key.len = name.len;
    h->value.len = value.len;
    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);

    return ngx_http_kroute_known_header(r, name, h);
}


/* Deletes every header of the name but `keep`; returns how many. */

static ngx_uint_t
ngx_http_kroute_request_header_remove(ngx_http_request_t *r, kroute_str_t name,
    ngx_table_elt_t *keep)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;
    part = &r->headers_in.headers.part;

    while (part) {
        h = part->elts;
        i = 0;

        while (i < part->nelts) {
            if (&h[i] == keep
                || h[i].key.len != name.len
                || ngx_strncasecmp(h[i].key.data, (u_char *) name.data,
                                   name.len) != 0)
            {
                i++;
                continue;
            }

            /* the elements after it move down one place: look at i again */

            if (keep && keep > &h[i] && keep < h + part->nelts) {
                keep--;
            }

            ngx_http_kroute_request_header_delete(r, part, i);
            n++;
        }

        part = part->next;
    }

    return n;
}


/*
 * Takes element i out of its part, moving the ones after it down, and moves
 * nginx's pointers to them along (a pointer to the deleted one becomes NULL,
 * or leaves its array). A part other than the first that becomes empty is
 * unlinked: loops over an ngx_list_t read a next part's first element
 * unchecked.
 */

static void
ngx_http_kroute_request_header_delete(ngx_http_request_t *r,
    ngx_list_part_t *part, ngx_uint_t i)
{
    ngx_uint_t           n, k;
    ngx_array_t         *a;
    ngx_list_t          *list;
    ngx_list_part_t     *prev;
    ngx_table_elt_t     *gone, *end, **pp, **ep;
    ngx_http_header_t   *hh;

    gone = (ngx_table_elt_t *) part->elts + i;
    end = (ngx_table_elt_t *) part->elts + part->nelts;

    for (hh = ngx_http_headers_in; hh->name.len; hh++) {

        if (ngx_http_kroute_header_list_offset(hh->offset)) {

            /* an array of pointers (Cookie, X-Forwarded-For) */

            a = (ngx_array_t *) ((char *) &r->headers_in + hh->offset);
            ep = a->elts;
            n = 0;

            for (k = 0; k < a->nelts; k++) {
                if (ep[k] == gone) {
                    continue;
                }

                ep[n++] = (ep[k] > gone && ep[k] < end) ? ep[k] - 1 : ep[k];
            }

            a->nelts = n;
            continue;
        }

        pp = (ngx_table_elt_t **) ((char *) &r->headers_in + hh->offset);

        if (*pp == gone) {
            *pp = NULL;

        } else if (*pp > gone && *pp < end) {
            (*pp)--;
        }
    }

    ngx_memmove(gone, gone + 1, (end - gone - 1) * sizeof(ngx_table_elt_t));
    part->nelts--;

    list = &r->headers_in.headers;

    if (part->nelts || part == &list->part) {
        return;
    }

    for (prev = &list->part; prev->next != part; prev = prev->next) {
        /* void */
    }

    prev->next = part->next;

    if (list->last == part) {
        list->last = prev;
    }
}


/*
 * A new header of a name nginx knows (ngx_http_headers_in) becomes what its
 * pointer names when it named nothing, or joins its array, as it would have
 * had the client sent it.
 */

static ngx_int_t
ngx_http_kroute_known_header(ngx_http_request_t *r, kroute_str_t name,
    ngx_table_elt_t *h)
{
    ngx_array_t        *a;
    ngx_table_elt_t   **pp;
    ngx_http_header_t  *hh;

    for (hh = ngx_http_headers_in; hh->name.len; hh++) {
        if (hh->name.len != name.len
            || ngx_strncasecmp(hh->name.data, (u_char *) name.data, name.len)
               != 0)
        {
            continue;
        }

        if (!ngx_http_kroute_header_list_offset(hh->offset)) {
            pp = (ngx_table_elt_t **) ((char *) &r->headers_in + hh->offset);

            if (*pp == NULL) {
                *pp = h;
            }

            return NGX_OK;
        }

        a = (ngx_array_t *) ((char *) &r->headers_in + hh->offset);

        if (a->elts == NULL
            && ngx_array_init(a, r->pool, 1, sizeof(ngx_table_elt_t *))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        pp = ngx_array_push(a);
        if (pp == NULL) {
            return NGX_ERROR;
        }

        *pp = h;

        return NGX_OK;
    }

    return NGX_OK;
}


/*
 * Whether a known header's field is an array of pointers rather than one
 * pointer: in nginx 1.22, Cookie and X-Forwarded-For.
 */

static ngx_uint_t
ngx_http_kroute_header_list_offset(ngx_uint_t offset)
{
#if (NGX_HTTP_X_FORWARDED_FOR)
    if (offset == offsetof(ngx_http_headers_in_t, x_forwarded_for)) {
        return 1;
    }
#endif

    return offset == offsetof(ngx_http_headers_in_t, cookies);
}


static u_char *
ngx_http_kroute_request_header_copy(ngx_http_request_t *r, kroute_str_t s)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, s.len ? s.len : 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s.data, s.len);

    return p;
}
