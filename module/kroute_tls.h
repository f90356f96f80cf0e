/*
 * TLS certificates from the route table for the nginx module: picks a
 * connection's certificate by SNI from a snapshot and keeps a per-worker
 * cache of parsed certificates keyed by fingerprint. C interface over
 * OpenSSL and routetable/ (C++); no exception ever reaches nginx.
 */

#ifndef _KROUTE_TLS_H_INCLUDED_
#define _KROUTE_TLS_H_INCLUDED_

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "kroute_table.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kroute_tls_cache_s  kroute_tls_cache_t;

/* A certificate of the table that could not be used, reported once per worker. */
typedef void (*kroute_tls_report_pt)(void *data, uint64_t fingerprint,
    const char *what, size_t len);

typedef enum {
    KROUTE_TLS_STATIC = 0,   /* nothing usable in the table: keep nginx's certificate */
    KROUTE_TLS_HOST,         /* the host's (or its wildcard's) certificate */
    KROUTE_TLS_DEFAULT       /* the scope's or the table's default certificate */
} kroute_tls_choice_e;

typedef struct {
    uint64_t  hits;
    uint64_t  parses;        /* cache fills: one per certificate per worker */
    uint64_t  failures;      /* certificates that did not parse or match their key */
    uint64_t  evictions;
    uint64_t  size;
} kroute_tls_stats_t;

/* NULL when out of memory. capacity >= 1: parsed certificates kept. */
kroute_tls_cache_t *kroute_tls_cache_create(size_t capacity);
void kroute_tls_cache_destroy(kroute_tls_cache_t *cache);

/*
 * Sets the certificate for server_name (SNI, may be empty) from the snapshot
 * on ssl, among the hosts of `scope` (kroute_snapshot_scope() of the
 * connection): exact host, one-label wildcard, the scope's default, then the
 * table's default; an entry that does not parse or does not match its key
 * falls back to the next; an expired certificate is served, as ingress-nginx
 * does (the agent warns). KROUTE_TLS_STATIC leaves ssl as it is.
 */
kroute_tls_choice_e kroute_tls_select(kroute_tls_cache_t *cache,
    const kroute_snapshot_t *snapshot, const unsigned char *server_name,
    size_t len, uint16_t scope, SSL *ssl, kroute_tls_report_pt report,
    void *data);

/*
 * Client certificates (kClientCert host records, routetable/policy/client_cert.h).
 *
 * kroute_tls_client_verify: in the certificate callback, after
 * kroute_tls_select. When the host server_name names in `scope` has a kClientCert
 * record, the handshake asks for a certificate: the record's CA (parsed once
 * per worker, kept by a hash of its PEM) is the verify store and the list of
 * acceptable CA names, with its depth; the verdict is kept, never fails the
 * handshake (the request is answered 400 as nginx does), and the session is
 * marked with kroute_client_cert_mark() of the record so it is never resumed
 * elsewhere. 0: done or nothing to do; -1: the record's CA is unusable, the
 * handshake must fail (never an open one). `problem` then says why.
 */
#define KROUTE_CLIENT_CERT_MARK_LEN  32

int kroute_tls_client_verify(kroute_tls_cache_t *cache,
    const kroute_snapshot_t *snapshot, const unsigned char *server_name,
    size_t len, uint16_t scope, SSL *ssl, const char **problem);

/*
 * The session id context of a session whose handshake applied `record`: its
 * digest (SHA-256 of CA, mode and depth), equal for equal records in any
 * snapshot. 0, or -1 for a record without a digest.
 */
int kroute_client_cert_mark(const kroute_route_t *route,
    const kroute_policy_t *record, unsigned char *mark);

void kroute_tls_stats(const kroute_tls_cache_t *cache,
    kroute_tls_stats_t *stats);

/*
 * A self-signed ECDSA P-256 certificate and key (PEM, NUL-terminated) for
 * common_name, valid for ten years. 0 on success; -1 when a buffer is too
 * small or OpenSSL fails.
 */
int kroute_tls_self_signed(const char *common_name, char *cert, size_t cert_size,
    char *key, size_t key_size);

/*
 * Upstream TLS of routes (kProtocol records, routetable/policy/protocol.h):
 * the records' CA certificates and client certificates, parsed once per
 * worker and kept by a hash of their PEM text.
 */
typedef struct kroute_tls_upstream_s  kroute_tls_upstream_t;

/* NULL when out of memory. capacity >= 1: parsed records kept. */
kroute_tls_upstream_t *kroute_tls_upstream_create(size_t capacity);
void kroute_tls_upstream_destroy(kroute_tls_upstream_t *cache);

/*
 * Sets up ssl, a new upstream connection before its handshake, as the
 * route's kProtocol record asks: SNI, TLS versions, verification against
 * the record's CA and name (a certificate that fails it fails the
 * handshake), the client certificate. 0, or -1 when the record's PEM is
 * unusable (the connection must not go on); `problem` then says why.
 */
int kroute_tls_upstream_prepare(kroute_tls_upstream_t *cache,
    const kroute_route_t *route, const kroute_policy_t *record, SSL *ssl,
    const char **problem);

#ifdef __cplusplus
}
#endif

#endif /* _KROUTE_TLS_H_INCLUDED_ */
