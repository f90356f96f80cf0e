// kClientCert: what a host's TLS clients must show (ingress-nginx's auth-tls-* annotations). A host-wide
// record: the handshake of a connection whose SNI names the host asks for a client certificate and checks
// it against the CA bundle `a` (module/kroute_tls.cc), and every request of the host is then checked by
// ngx_http_kroute_client_cert_module.c: the verify result, match-cn, the headers sent upstream.
//   flags: the verify mode (kVerifyModeMask) | kPassCertificate
//   value: bits 0-7 the verify depth (1-100); bits 32-63 the length of the error page at the start of `b`
//   a:     the CA bundle (PEM, public certificates: not secret)
//   b:     the error page URL (may be empty), then the match-cn regex (may be empty)
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

inline std::uint8_t client_verify_depth(std::uint64_t value) { return static_cast<std::uint8_t>(value & 0xff); }
inline std::uint32_t client_error_page_length(std::uint64_t value) { return static_cast<std::uint32_t>(value >> 32); }

// `ca_pem` is filled by the agent's compiler from the Secret; `error_page` "" or an http(s) URL;
// `match_cn` "" or a regex matched against the subject DN.
inline PolicyRecord client_cert(VerifyClient mode, std::uint8_t depth, bool pass_certificate, std::string ca_pem,
                                const std::string& error_page, const std::string& match_cn) {
  return {.kind = PolicyKind::kClientCert,
          .flags = mode | (pass_certificate ? kPassCertificate : 0u),
          .value = std::uint64_t{depth} | std::uint64_t{static_cast<std::uint32_t>(error_page.size())} << 32,
          .a = std::move(ca_pem),
          .b = error_page + match_cn};
}

inline std::string_view client_error_page(const PolicyRecord& record) {
  return std::string_view(record.b).substr(0, client_error_page_length(record.value));
}
inline std::string_view client_match_cn(const PolicyRecord& record) {
  return std::string_view(record.b).substr(std::min<std::size_t>(client_error_page_length(record.value), record.b.size()));
}

std::string check_client_cert(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
