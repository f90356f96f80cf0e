// kClientCert: what a host's TLS clients must show (ingress-nginx's auth-tls-* annotations). A host-wide
// record: the handshake of a connection whose SNI names the host asks for a client certificate and checks
// it against the CA bundle `a` (module/kroute_tls.cc), and every request of the host is then checked by
// ngx_http_kroute_client_cert_module.c: the verify result, match-cn, the headers sent upstream.
//   flags: the verify mode (kVerifyModeMask) | kPassCertificate
//   value: bits 0-7 the verify depth (1-100); bits 32-63 the length of the error page in `b`
//   a:     the CA bundle (PEM, public certificates: not secret), then its CRLs if any
//   b:     the digest (kClientDigestLength lowercase hex digits of SHA-256 over mode, depth and `a`), the
//          error page URL (may be empty), then the match-cn regex (may be empty)
// The digest is who the client was verified for: the module keeps parsed CAs by it and marks a
// handshake's session with it, so a request is only let through on a connection verified for its own
// host's CA, mode and depth (a cryptographic hash: an Ingress author cannot make another CA collide).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

// ssl_verify_client's values, as auth-tls-verify-client writes them.
enum VerifyClient : std::uint32_t { kVerifyOff = 0, kVerifyOn = 1, kVerifyOptional = 2, kVerifyOptionalNoCa = 3 };
inline constexpr std::uint32_t kVerifyModeMask = 3;
// auth-tls-pass-certificate-to-upstream: the URL-escaped PEM goes upstream in ssl-client-cert.
inline constexpr std::uint32_t kPassCertificate = 4;
inline constexpr std::uint32_t kClientCertFlags = kVerifyModeMask | kPassCertificate;
inline constexpr std::uint8_t kMaxVerifyDepth = 100;

inline constexpr std::size_t kClientDigestLength = 64;

inline std::uint8_t client_verify_depth(std::uint64_t value) { return static_cast<std::uint8_t>(value & 0xff); }
inline std::uint32_t client_error_page_length(std::uint64_t value) { return static_cast<std::uint32_t>(value >> 32); }

// Without its CA: `a` and the digest are the agent's compiler's to add (with_client_ca) from the Secret.
// `error_page` "" or an http(s) URL; `match_cn` "" or a regex matched against the subject DN.
inline PolicyRecord client_cert(VerifyClient mode, std::uint8_t depth, bool pass_certificate,
                                const std::string& error_page, const std::string& match_cn) {
  return {.kind = PolicyKind::kClientCert,
          .flags = mode | (pass_certificate ? kPassCertificate : 0u),
          .value = std::uint64_t{depth} | std::uint64_t{static_cast<std::uint32_t>(error_page.size())} << 32,
          .b = error_page + match_cn};
}

// The bytes the digest is taken over: mode, depth, then the CA text.
inline std::string client_digest_input(const PolicyRecord& record, std::string_view ca_pem) {
  std::string input;
  input += static_cast<char>('0' + (record.flags & kVerifyModeMask));
  input += static_cast<char>(client_verify_depth(record.value));
  input += ca_pem;
  return input;
}

// The record with its CA and the digest (hex of SHA-256 over client_digest_input, computed by the caller).
inline void with_client_ca(PolicyRecord& record, std::string ca_pem, const std::string& digest_hex) {
  record.a = std::move(ca_pem);
  record.b.insert(0, digest_hex);
}

inline std::string_view client_digest(const PolicyRecord& record) {
  return std::string_view(record.b).substr(0, kClientDigestLength);
}
inline std::string_view client_error_page(const PolicyRecord& record) {
  const std::string_view rest = std::string_view(record.b).substr(std::min(kClientDigestLength, record.b.size()));
  return rest.substr(0, client_error_page_length(record.value));
}
inline std::string_view client_match_cn(const PolicyRecord& record) {
  const std::string_view rest = std::string_view(record.b).substr(std::min(kClientDigestLength, record.b.size()));
  return rest.substr(std::min<std::size_t>(client_error_page_length(record.value), rest.size()));
}

std::string check_client_cert(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
