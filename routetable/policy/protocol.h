// kProtocol: how nginx talks to the rule's backend. `code` is the protocol (HTTPS, gRPC, ...), which the
// module applies by moving the request to the named location nginx.conf has for it (`kroute_protocol`);
// `flags` add HTTP/1.0 upstream and the upstream TLS checks, which the balancer applies to each new TLS
// connection. Made from ingress-nginx's backend-protocol, proxy-http-version and proxy-ssl-*; applied by
// ngx_http_kroute_protocol_module.c and the balancer's set_session hook.
//
// `value` packs the upstream TLS numbers: bits 0-7 the lowest TLS version (the low byte of 0x0301..0x0304,
// 0: nginx's default), bits 8-15 the highest, bits 16-23 the verification depth, bits 32-63 the length of
// `b`'s CA part. `a` is the TLS name (SNI and the name the certificate must carry), then, after a space,
// the OpenSSL cipher list for TLS 1.2 when the rule has one. `b` is PEM: the CA certificates the
// backend's certificate is checked against, then the client certificate chain and its key when the
// Secret has them.
#pragma once

#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

enum UpstreamProtocol : std::uint16_t {
  kHttp = 1,
  kHttps = 2,
  kGrpc = 3,
  kGrpcs = 4,
  kAutoHttp = 5,  // HTTPS when the client came over TLS, HTTP otherwise
};
inline constexpr std::uint16_t kLastProtocol = kAutoHttp;

enum ProtocolFlags : std::uint32_t {
  kHttp10 = 1,      // HTTP/1.0 to the backend (HTTP and HTTPS)
  kVerify = 2,      // the backend's certificate must chain to `b`'s CA and carry name `a`
  kServerName = 4,  // send `a` as SNI
};
// A Secret the rule names that is missing or unusable makes no record: the rule gets a kDeny record
// (policy/deny.h) and answers 503, so it never talks to a backend without the TLS it asked for.
inline constexpr std::uint32_t kProtocolFlags = kHttp10 | kVerify | kServerName;
// What the module copies out of `a` (NUL-terminated for OpenSSL): a DNS name, and a cipher list.
inline constexpr std::size_t kMaxTlsName = 253;
inline constexpr std::size_t kMaxCipherList = 1024;

inline constexpr std::uint64_t tls_numbers(std::uint8_t min_version, std::uint8_t max_version, std::uint8_t depth,
                                           std::uint32_t ca_length) {
  return std::uint64_t{min_version} | std::uint64_t{max_version} << 8 | std::uint64_t{depth} << 16 |
         std::uint64_t{ca_length} << 32;
}
inline constexpr std::uint8_t min_tls_version(std::uint64_t value) { return value & 0xff; }
inline constexpr std::uint8_t max_tls_version(std::uint64_t value) { return (value >> 8) & 0xff; }
inline constexpr std::uint8_t verify_depth(std::uint64_t value) { return (value >> 16) & 0xff; }
inline constexpr std::uint32_t ca_length(std::uint64_t value) { return static_cast<std::uint32_t>(value >> 32); }

inline PolicyRecord protocol(UpstreamProtocol code, std::uint32_t flags, std::uint64_t value = 0,
                             std::string name = {}, std::string pem = {}) {
  return {.kind = PolicyKind::kProtocol, .code = code, .flags = flags, .value = value, .a = std::move(name),
          .b = std::move(pem)};
}

std::string check_protocol(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
