// Certificates from the route table, parsed once per worker: kroute_tls.h's C interface. The cache is
// keyed by the table's fingerprint of chain + key, so a rotated Secret (a new fingerprint) is parsed on
// its first handshake and an unchanged one never again; least recently used entries go first.
#include "kroute_tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/rand.h>
#include <openssl/bn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <list>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "hashing.h"
#include "policy/client_cert.h"
#include "policy/protocol.h"
#include "reader.h"
#include "snapshot.h"

namespace {

struct X509Free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct ChainFree {
  void operator()(STACK_OF(X509)* s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using ChainPtr = std::unique_ptr<STACK_OF(X509), ChainFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// A parsed certificate; `usable` false remembers a failure so it is reported (and parsed) only once.
struct ParsedCertificate {
  std::uint64_t fingerprint = 0;
  bool usable = false;
  X509Ptr leaf;
  KeyPtr key;
  ChainPtr chain;
};

// An encrypted key must fail, not prompt on nginx's terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

BioPtr memory_bio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The reason OpenSSL gave, without anything from the input (never key material), and an empty queue.
std::string_view openssl_reason(char* buf, std::size_t size) {
  const unsigned long e = ERR_peek_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  std::snprintf(buf, size, "%s", reason != nullptr ? reason : "unknown error");
  return buf;
}

// Fills `c` from the entry's PEM text; returns what is wrong (empty when nothing is).
std::string_view parse(const kroute::SnapshotView& view, const kroute::format::TlsEntry& entry, ParsedCertificate& c,
                       char* buf, std::size_t size) {
  const std::string_view chain_pem = view.str(entry.chain_pem);
  const std::string_view key_pem = view.str(entry.key_pem);
  if (chain_pem.empty() || key_pem.empty()) return "no certificate or no key";
  BioPtr bio = memory_bio(chain_pem);
  if (!bio) return openssl_reason(buf, size);
  c.leaf.reset(PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr));
  if (!c.leaf) return "bad certificate PEM";
  c.chain.reset(sk_X509_new_null());
  if (!c.chain) return openssl_reason(buf, size);
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (sk_X509_push(c.chain.get(), extra) == 0) {
      X509_free(extra);
      return openssl_reason(buf, size);
    }
  }
  const unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();  // the end of the chain
  } else if (last != 0) {
    return "bad certificate chain PEM";
  }
  bio = memory_bio(key_pem);
  if (!bio) return openssl_reason(buf, size);
  c.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!c.key) {
    ERR_clear_error();
    return "bad private key PEM (or an encrypted key)";
  }
  if (X509_check_private_key(c.leaf.get(), c.key.get()) != 1) {
    ERR_clear_error();
    return "the private key does not match the certificate";
  }
  return {};
}

struct NamesFree {
  void operator()(STACK_OF(X509_NAME)* s) const noexcept { sk_X509_NAME_pop_free(s, X509_NAME_free); }
};
using NamesPtr = std::unique_ptr<STACK_OF(X509_NAME), NamesFree>;
struct CaStoreFree {
  void operator()(X509_STORE* s) const noexcept { X509_STORE_free(s); }
};

// A kClientCert record's CA bundle, parsed: the verify store and the names the CertificateRequest lists.
struct ClientCa {
  const char* problem = nullptr;  // unusable: why
  std::unique_ptr<X509_STORE, CaStoreFree> store;
  NamesPtr names;
};

const char* parse_client_ca(std::string_view pem, ClientCa& c) {
  BioPtr bio = memory_bio(pem);
  c.store.reset(X509_STORE_new());
  c.names.reset(sk_X509_NAME_new_null());
  if (!bio || !c.store || !c.names) return "out of memory";
  int count = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)}) {
    if (X509_STORE_add_cert(c.store.get(), cert.get()) != 1) return "a CA certificate was refused";
    X509_NAME* name = X509_NAME_dup(X509_get_subject_name(cert.get()));
    if (name == nullptr || sk_X509_NAME_push(c.names.get(), name) == 0) {
      X509_NAME_free(name);
      return "out of memory";
    }
    ++count;
  }
  ERR_clear_error();
  if (count == 0) return "no CA certificate";
  // ca.crl's CRLs follow the certificates; as nginx's ssl_crl, every certificate of a chain is checked.
  bio = memory_bio(pem);
  if (!bio) return "out of memory";
  int crls = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, no_passphrase, nullptr)) {
    const int added = X509_STORE_add_crl(c.store.get(), crl);
    X509_CRL_free(crl);
    if (added != 1) return "a CRL was refused";
    ++crls;
  }
  ERR_clear_error();
  if (crls != 0 && X509_STORE_set_flags(c.store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) != 1) {
    return "cannot check CRLs";
  }
  return nullptr;
}

// The handshake never fails on a client's certificate: the verdict is kept and each request is answered
// by it (ngx_http_kroute_client_cert_module.c), as nginx's own ssl_verify_client does.
int keep_going(int, X509_STORE_CTX*) { return 1; }

// The record's digest (the start of `b`, hex) as KROUTE_CLIENT_CERT_MARK_LEN bytes; false when it has none.
bool client_cert_mark(std::string_view b, unsigned char* mark) {
  static_assert(kroute::policy::kClientDigestLength == 2 * KROUTE_CLIENT_CERT_MARK_LEN);
  if (b.size() < kroute::policy::kClientDigestLength) return false;
  const auto nibble = [](char c) -> int {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (std::size_t i = 0; i < KROUTE_CLIENT_CERT_MARK_LEN; ++i) {
    const int high = nibble(b[2 * i]);
    const int low = nibble(b[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    mark[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

}  // namespace

struct kroute_tls_cache_s {
  explicit kroute_tls_cache_s(std::size_t capacity) : capacity(capacity) { index.reserve(capacity + 1); }

  // The parsed certificate of `entry`: from the cache, else parsed now (reported once when unusable).
  const ParsedCertificate& get(const kroute::SnapshotView& view, const kroute::format::TlsEntry& entry,
                               kroute_tls_report_pt report, void* data) {
    if (auto it = index.find(entry.fingerprint); it != index.end()) {
      ++stats.hits;
      entries.splice(entries.begin(), entries, it->second);  // most recently used first; no allocation
      return *it->second;
    }
    if (entries.size() >= capacity) {
      index.erase(entries.back().fingerprint);
      entries.pop_back();
      ++stats.evictions;
    }
    entries.emplace_front();
    ParsedCertificate& c = entries.front();
    c.fingerprint = entry.fingerprint;
    index.emplace(entry.fingerprint, entries.begin());
    ++stats.parses;
    char buf[160];
    const std::string_view problem = parse(view, entry, c, buf, sizeof buf);
    c.usable = problem.empty();
    if (!c.usable) {
      c.leaf.reset();
      c.key.reset();
      c.chain.reset();
      ++stats.failures;
      this->report(view, entry, problem, report, data);
    }
    return c;
  }

  static void report(const kroute::SnapshotView& view, const kroute::format::TlsEntry& entry, std::string_view problem,
                     kroute_tls_report_pt report, void* data) {
    if (report == nullptr) return;
    const std::string_view host = view.str(entry.host);
    const std::string_view ns = view.str(entry.secret_ns);
    const std::string_view name = view.str(entry.secret_name);
    char line[512];
    const int n = std::snprintf(line, sizeof line, "certificate of Secret %.*s/%.*s for \"%.*s\": %.*s",
                                static_cast<int>(ns.size()), ns.data(), static_cast<int>(name.size()), name.data(),
                                static_cast<int>(host.size()), host.data(), static_cast<int>(problem.size()),
                                problem.data());
    if (n > 0) report(data, entry.fingerprint, line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1));
  }

  // Kept by the record's digest (a hash an Ingress author cannot make collide with another CA's).
  const ClientCa& client_ca(const unsigned char (&digest)[KROUTE_CLIENT_CERT_MARK_LEN], std::string_view pem) {
    const std::string_view key(reinterpret_cast<const char*>(digest), sizeof digest);
    if (auto it = client_cas.find(key); it != client_cas.end()) return it->second;
    // Hosts with distinct CAs are few; a worker that meets more starts over.
    if (client_cas.size() >= capacity) client_cas.clear();
    ClientCa& c = client_cas[std::string(key)];
    c.problem = parse_client_ca(pem, c);
    return c;
  }

  std::size_t capacity;
  std::map<std::string, ClientCa, std::less<>> client_cas;
  std::list<ParsedCertificate> entries;  // most recently used first
  std::unordered_map<std::uint64_t, std::list<ParsedCertificate>::iterator> index;
  kroute_tls_stats_t stats{};
};

namespace {

bool use(SSL* ssl, const ParsedCertificate& c) {
  // Certificates of other key types from nginx's static configuration must go, or OpenSSL may pick one
  // of them by the client's signature algorithms.
  SSL_certs_clear(ssl);
  if (SSL_use_cert_and_key(ssl, c.leaf.get(), c.key.get(), c.chain.get(), 1) == 1) return true;
  ERR_clear_error();
  return false;
}

// Back to the certificate(s) nginx configured for this server, after a failed use().
void restore_static(SSL* ssl) {
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  EVP_PKEY* key = SSL_CTX_get0_privatekey(ctx);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  if (leaf != nullptr && key != nullptr) SSL_use_cert_and_key(ssl, leaf, key, chain, 1);
  ERR_clear_error();
}

const kroute::SnapshotView& view_of(const kroute_snapshot_t* snapshot) {
  return reinterpret_cast<const kroute::MappedSnapshot*>(snapshot)->view;
}

}  // namespace

namespace {

struct StoreFree {
  void operator()(X509_STORE* s) const noexcept { X509_STORE_free(s); }
};
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;

// A kProtocol record's PEM, parsed: the CA store, and the client certificate when there is one.
struct UpstreamCredentials {
  const char* problem = nullptr;  // unusable: why
  StorePtr ca;
  X509Ptr leaf;
  KeyPtr key;
  ChainPtr chain;
};

// Every certificate of `pem` into a new store; the end of the text ends it.
const char* parse_ca(std::string_view pem, UpstreamCredentials& c) {
  BioPtr bio = memory_bio(pem);
  c.ca.reset(X509_STORE_new());
  if (!bio || !c.ca) return "out of memory";
  int count = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)}) {
    if (X509_STORE_add_cert(c.ca.get(), cert.get()) != 1) return "a CA certificate was refused";
    ++count;
  }
  ERR_clear_error();
  return count == 0 ? "no CA certificate" : nullptr;
}

// The client chain (its first certificate is the leaf) and its key, both from `pem`.
const char* parse_client(std::string_view pem, UpstreamCredentials& c) {
  BioPtr bio = memory_bio(pem);
  if (!bio) return "out of memory";
  c.leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
  if (!c.leaf) return "bad client certificate PEM";
  c.chain.reset(sk_X509_new_null());
  if (!c.chain) return "out of memory";
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (sk_X509_push(c.chain.get(), extra) == 0) {
      X509_free(extra);
      return "out of memory";
    }
  }
  ERR_clear_error();
  bio = memory_bio(pem);
  if (!bio) return "out of memory";
  c.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (!c.key) return "bad client key PEM (or an encrypted key)";
  if (X509_check_private_key(c.leaf.get(), c.key.get()) != 1) {
    ERR_clear_error();
    return "the client key does not match its certificate";
  }
  return nullptr;
}

// The verification result decides; nginx's callback on a shared context must not accept everything.
int keep_verdict(int ok, X509_STORE_CTX*) { return ok; }

}  // namespace

struct kroute_tls_upstream_s {
  explicit kroute_tls_upstream_s(std::size_t capacity) : capacity(capacity) { parsed.reserve(capacity + 1); }

  const UpstreamCredentials& get(std::string_view pem, std::uint32_t ca_length) {
    const std::uint64_t key = kroute::payload_checksum(pem.data(), pem.size());
    if (auto it = parsed.find(key); it != parsed.end()) return it->second;
    // Rules with distinct Secrets are few; when a worker meets more, it starts over.
    if (parsed.size() >= capacity) parsed.clear();
    UpstreamCredentials& c = parsed[key];
    c.problem = parse_ca(pem.substr(0, ca_length), c);
    if (c.problem == nullptr && pem.size() > ca_length) c.problem = parse_client(pem.substr(ca_length), c);
    return c;
  }

  std::size_t capacity;
  std::unordered_map<std::uint64_t, UpstreamCredentials> parsed;
};

extern "C" {

kroute_tls_upstream_t* kroute_tls_upstream_create(std::size_t capacity) {
  try {
    return new kroute_tls_upstream_s(capacity == 0 ? 1 : capacity);
  } catch (...) {
    return nullptr;
  }
}

void kroute_tls_upstream_destroy(kroute_tls_upstream_t* cache) { delete cache; }

int kroute_tls_upstream_prepare(kroute_tls_upstream_t* cache, const kroute_route_t* route,
                                const kroute_policy_t* record, SSL* ssl, const char** problem) {
  namespace policy = kroute::policy;
  *problem = nullptr;
  // A refusal leaves OpenSSL's error queue empty, so nginx's next SSL call does not log it as its own.
  const auto fail = [&](const char* why) {
    ERR_clear_error();
    *problem = why;
    return -1;
  };
  try {
    const kroute_str_t a = kroute_policy_str(route, record->a);
    const kroute_str_t pem = kroute_policy_str(route, record->b);
    // `a` is the name, then after a space the cipher list: NUL-terminated copies for OpenSSL.
    const std::string_view text(reinterpret_cast<const char*>(a.data), a.len);
    const std::size_t space = std::min(text.find(' '), text.size());
    const kroute_str_t name{space, a.data};
    const std::string_view ciphers = text.substr(std::min(space + 1, text.size()));
    char host[policy::kMaxTlsName + 1];
    char cipher_list[policy::kMaxCipherList + 1];
    if (name.len >= sizeof host || ciphers.size() >= sizeof cipher_list) {
      return fail("TLS name or cipher list too long");
    }
    std::memcpy(host, name.data, name.len);
    host[name.len] = '\0';
    std::memcpy(cipher_list, ciphers.data(), ciphers.size());
    cipher_list[ciphers.size()] = '\0';
    if (!ciphers.empty() && SSL_set_cipher_list(ssl, cipher_list) != 1) {
      return fail("OpenSSL refused the cipher list");
    }
    if ((record->flags & policy::kServerName) && name.len != 0 && SSL_set_tlsext_host_name(ssl, host) != 1) {
      return fail("cannot set SNI");
    }
    const std::uint8_t low = policy::min_tls_version(record->value);
    const std::uint8_t high = policy::max_tls_version(record->value);
    if (low || high) {
      // The record's range decides, not the versions nginx.conf switched off for every backend.
      SSL_clear_options(ssl, SSL_OP_NO_TLSv1_2 | SSL_OP_NO_TLSv1_3);
    }
    if ((low && SSL_set_min_proto_version(ssl, 0x0300 | low) != 1) ||
        (high && SSL_set_max_proto_version(ssl, 0x0300 | high) != 1)) {
      return fail("cannot set the TLS versions");
    }
    const std::uint32_t ca_length = policy::ca_length(record->value);
    if (ca_length == 0) {
      // Verification without a CA never reaches here: the agent denies the rule (a kDeny record).
      return (record->flags & policy::kVerify) ? fail("verification without a CA") : 0;
    }
    const UpstreamCredentials& c =
        cache->get({reinterpret_cast<const char*>(pem.data), pem.len}, ca_length);
    if (c.problem != nullptr) return fail(c.problem);
    if (c.leaf && SSL_use_cert_and_key(ssl, c.leaf.get(), c.key.get(), c.chain.get(), 1) != 1) {
      return fail("the client certificate was refused");
    }
    if (record->flags & policy::kVerify) {
      if (SSL_set1_verify_cert_store(ssl, c.ca.get()) != 1) {
        return fail("cannot set the CA");
      }
      SSL_set_verify(ssl, SSL_VERIFY_PEER, keep_verdict);
      const std::uint8_t depth = policy::verify_depth(record->value);
      SSL_set_verify_depth(ssl, depth ? depth : 1);
      if (name.len != 0) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1) {
          return fail("cannot set the name to verify");
        }
      }
    }
    return 0;
  } catch (...) {
    return fail("out of memory");
  }
}

kroute_tls_cache_t* kroute_tls_cache_create(std::size_t capacity) {
  try {
    return new kroute_tls_cache_s(capacity == 0 ? 1 : capacity);
  } catch (...) {
    return nullptr;
  }
}

void kroute_tls_cache_destroy(kroute_tls_cache_t* cache) { delete cache; }

kroute_tls_choice_e kroute_tls_select(kroute_tls_cache_t* cache, const kroute_snapshot_t* snapshot,
                                      const unsigned char* server_name, std::size_t len, std::uint16_t scope,
                                      SSL* ssl, kroute_tls_report_pt report, void* data) {
  if (snapshot == nullptr) return KROUTE_TLS_STATIC;
  try {
    const kroute::SnapshotView& view = view_of(snapshot);
    // The name's own, then the defaults it would fall back to; each tried once.
    const kroute::format::TlsEntry* candidates[3] = {
        view.certificate_for({reinterpret_cast<const char*>(server_name), len}, scope), view.scope_certificate(scope),
        view.default_certificate()};
    bool cleared = false;
    for (int i = 0; i < 3; ++i) {
      const kroute::format::TlsEntry* entry = candidates[i];
      if (entry == nullptr || entry->chain_pem.length == 0) continue;
      if (std::any_of(candidates, candidates + i, [&](const kroute::format::TlsEntry* earlier) {
            return earlier != nullptr && earlier->fingerprint == entry->fingerprint;
          }))
        continue;
      const ParsedCertificate& c = cache->get(view, *entry, report, data);
      if (!c.usable) continue;
      cleared = true;
      if (use(ssl, c)) return i == 0 && entry->host.length != 0 ? KROUTE_TLS_HOST : KROUTE_TLS_DEFAULT;
    }
    if (cleared) restore_static(ssl);
  } catch (...) {
    // Out of memory while filling the cache: nginx's own certificate serves this handshake.
    ERR_clear_error();
  }
  return KROUTE_TLS_STATIC;
}

int kroute_tls_client_verify(kroute_tls_cache_t* cache, const kroute_snapshot_t* snapshot,
                             const unsigned char* server_name, std::size_t len, std::uint16_t scope, SSL* ssl,
                             const char** problem) {
  namespace policy = kroute::policy;
  *problem = nullptr;
  if (snapshot == nullptr || len == 0) return 0;
  const auto fail = [&](const char* why) {
    ERR_clear_error();
    *problem = why;
    return -1;
  };
  try {
    const kroute::SnapshotView& view = view_of(snapshot);
    kroute::HostMatch how;
    const kroute::format::HostEntry* host =
        view.find_host({reinterpret_cast<const char*>(server_name), len}, how, scope);
    if (host == nullptr) return 0;
    for (const kroute::format::PolicyRecord& record : view.policies(host->policies)) {
      if (record.kind != kroute::format::PolicyKind::kClientCert) continue;
      const std::uint32_t mode = record.flags & policy::kVerifyModeMask;
      if (mode == policy::kVerifyOff) return 0;
      unsigned char mark[KROUTE_CLIENT_CERT_MARK_LEN];
      if (!client_cert_mark(view.str(record.b), mark)) return fail("no CA digest");
      const ClientCa& ca = cache->client_ca(mark, view.str(record.a));
      if (ca.problem != nullptr) return fail(ca.problem);
      STACK_OF(X509_NAME)* names = SSL_dup_CA_list(ca.names.get());
      if (names == nullptr) return fail("out of memory");
      SSL_set_client_CA_list(ssl, names);
      if (SSL_set1_verify_cert_store(ssl, ca.store.get()) != 1) return fail("cannot set the CA");
      SSL_set_verify(ssl, SSL_VERIFY_PEER, keep_going);
      SSL_set_verify_depth(ssl, policy::client_verify_depth(record.value));
      SSL_SESSION* session = SSL_get0_session(ssl);
      if (session == nullptr || SSL_SESSION_set1_id_context(session, mark, sizeof mark) != 1) {
        return fail("cannot mark the session");
      }
      return 0;
    }
    return 0;
  } catch (...) {
    return fail("out of memory");
  }
}

int kroute_client_cert_mark(const kroute_route_t* route, const kroute_policy_t* record, unsigned char* mark) {
  const kroute_str_t b = kroute_policy_str(route, record->b);
  return client_cert_mark({reinterpret_cast<const char*>(b.data), b.len}, mark) ? 0 : -1;
}

void kroute_tls_stats(const kroute_tls_cache_t* cache, kroute_tls_stats_t* stats) {
  *stats = cache->stats;
  stats->size = cache->entries.size();
}

int kroute_tls_self_signed(const char* common_name, char* cert, std::size_t cert_size, char* key,
                           std::size_t key_size) {
  KeyPtr pkey(EVP_EC_gen("P-256"));
  X509Ptr x509(X509_new());
  bool ok = pkey && x509 && X509_set_version(x509.get(), 2) == 1;
  unsigned char serial[16];
  if (ok) {
    ok = RAND_bytes(serial, sizeof serial) == 1;
    serial[0] &= 0x7f;  // a positive serial
  }
  if (ok) {
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof serial, nullptr), BN_free);
    ok = bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x509.get())) != nullptr;
  }
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(x509.get()), -3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(x509.get()), 10L * 365 * 24 * 3600) != nullptr &&
       X509_set_pubkey(x509.get(), pkey.get()) == 1;
  if (ok) {
    X509_NAME* name = X509_get_subject_name(x509.get());
    ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name),
                                    -1, -1, 0) == 1 &&
         X509_set_issuer_name(x509.get(), name) == 1 && X509_sign(x509.get(), pkey.get(), EVP_sha256()) > 0;
  }
  auto write = [](BioPtr& bio, char* out, std::size_t size) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    if (n <= 0 || static_cast<std::size_t>(n) >= size) return false;
    std::memcpy(out, data, static_cast<std::size_t>(n));
    out[n] = '\0';
    return true;
  };
  if (ok) {
    BioPtr c(BIO_new(BIO_s_mem())), k(BIO_new(BIO_s_mem()));
    ok = c && k && PEM_write_bio_X509(c.get(), x509.get()) == 1 &&
         PEM_write_bio_PrivateKey(k.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
         write(c, cert, cert_size) && write(k, key, key_size);
  }
  ERR_clear_error();
  return ok ? 0 : -1;
}

}  // extern "C"
