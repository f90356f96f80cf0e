#include "kinds.h"

#include <iterator>

#include "error_pages.h"
#include "external_auth.h"
#include "affinity.h"
#include "balance.h"
#include "basic_auth.h"
#include "canary.h"
#include "cors.h"
#include "client_cert.h"
#include "deny.h"
#include "headers.h"
#include "proxy_setting.h"
#include "mirror.h"
#include "protocol.h"
#include "rate_limit.h"
#include "redirect.h"
#include "rewrite.h"
#include "satisfy.h"
#include "server_name.h"
#include "source_range.h"
#include "split.h"
#include "header_modifier.h"
#include "template.h"

namespace kroute::policy {

namespace {

constexpr const char* kHeaderActions[] = {"", "set", "add", "remove"};

constexpr KindInfo kKinds[] = {
    {PolicyKind::kRedirect, "redirect", check_redirect},
    {PolicyKind::kRewrite, "rewrite", check_rewrite},
    {PolicyKind::kUpstreamHost, "upstream-host", check_upstream_host},
    {PolicyKind::kForwardedPrefix, "forwarded-prefix", check_forwarded_prefix},
    {PolicyKind::kProxySetting, "proxy-setting", check_proxy_setting},
    {PolicyKind::kErrorPages, "error-pages", check_error_pages},
    {PolicyKind::kMirror, "mirror", check_mirror},
    {PolicyKind::kCanary, "canary", check_canary},
    {PolicyKind::kAffinity, "affinity", check_affinity},
    {PolicyKind::kBalance, "balance", check_balance},
    {PolicyKind::kProtocol, "protocol", check_protocol, kSecretB},  // b: the client certificate's key
    {PolicyKind::kDeny, "deny", check_deny},
    {PolicyKind::kSatisfy, "satisfy-any", check_satisfy},
    {PolicyKind::kSourceRange, "source-range", check_source_range, kNoSecret, kCidrA},
    {PolicyKind::kExternalAuth, "external-auth", check_external_auth},
    {PolicyKind::kBasicAuth, "basic-auth", check_basic_auth, kSecretA},  // a: the users' password hashes
    {PolicyKind::kCors, "cors", check_cors},
    {PolicyKind::kRateLimit, "rate-limit", check_rate_limit, kNoSecret, kCidrB},  // b: exempt clients
    {PolicyKind::kBandwidth, "bandwidth", check_bandwidth},
    {PolicyKind::kClientCert, "client-cert", check_client_cert},
    {PolicyKind::kSplit, "split", check_split},
    {PolicyKind::kRequestHeader, "request-header", check_request_header, kNoSecret, kNoCidr, kHeaderActions},
    {PolicyKind::kResponseHeader, "response-header", check_response_header, kNoSecret, kNoCidr, kHeaderActions},
    {PolicyKind::kServerName, "server-name", check_server_name, kNoSecret, kNoCidr, {}, true},
};

}  // namespace

const KindInfo* kind_info(PolicyKind kind) noexcept {
  for (const KindInfo& info : kKinds) {
    if (info.kind == kind) return &info;
  }
  return nullptr;
}

const char* kind_name(PolicyKind kind) noexcept {
  const KindInfo* info = kind_info(kind);
  return info ? info->name : "unknown";
}

const char* code_name(PolicyKind kind, std::uint16_t code) noexcept {
  const KindInfo* info = kind_info(kind);
  if (info == nullptr || code >= info->codes.size() || info->codes[code][0] == '\0') return nullptr;
  return info->codes[code];
}

bool code_by_name(PolicyKind kind, std::string_view name, std::uint16_t& code) noexcept {
  const KindInfo* info = kind_info(kind);
  if (info == nullptr || name.empty()) return false;
  for (std::size_t i = 0; i < info->codes.size(); ++i) {
    if (info->codes[i] == name) {
      code = static_cast<std::uint16_t>(i);
      return true;
    }
  }
  return false;
}

bool kind_by_name(std::string_view name, PolicyKind& kind) noexcept {
  for (const KindInfo& info : kKinds) {
    if (info.name == name) {
      kind = info.kind;
      return true;
    }
  }
  return false;
}

unsigned secret_fields(PolicyKind kind) noexcept {
  const KindInfo* info = kind_info(kind);
  return info ? info->secret : kNoSecret;
}

unsigned cidr_fields(PolicyKind kind) noexcept {
  const KindInfo* info = kind_info(kind);
  return info ? info->cidr : kNoCidr;
}

std::string check_satisfy(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.flags != 0 || record.value != 0 || !record.a.empty() || !record.b.empty())
    return "has fields a satisfy record does not use";
  return {};
}

std::string check_deny(const PolicyRecord& record, bool) {
  if (record.code < 400 || record.code > 599) return "status " + std::to_string(record.code) + " is not 400-599";
  if (record.flags != 0 || record.value != 0 || !record.b.empty()) return "has fields a deny record does not use";
  return check_header_value(record.a);
}

std::string check_record(const PolicyRecord& record, bool captures) {
  const KindInfo* info = kind_info(record.kind);
  if (info == nullptr) return "unknown policy kind " + std::to_string(static_cast<unsigned>(record.kind));
  return info->check(record, captures);
}

std::string check_header_value(std::string_view value) {
  for (const unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) return "must not contain control characters or line breaks";
  }
  if (value.size() > kMaxTemplateLength) return "is longer than " + std::to_string(kMaxTemplateLength) + " characters";
  return {};
}

bool is_header_name(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (const unsigned char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string check_split(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.flags != 0 || !record.a.empty() || !record.b.empty())
    return "has fields a split record does not use";
  if (record.value > kMaxSplitWeight) return "weight " + std::to_string(record.value) + " is above 2^32-1";
  return {};
}

std::string check_redirect(const PolicyRecord& record, bool captures) {
  if (record.code < 300 || record.code > 308) return "redirect code must be 300-308";
  if ((record.flags & ~kRedirectFlags) != 0) return "unknown redirect flags";
  if (record.a.empty()) return "redirect needs a location";
  if (std::string problem = check_header_value(record.a); !problem.empty()) return "location " + problem;
  return check_template(record.a, captures);
}

std::string check_rewrite(const PolicyRecord& record, bool captures) {
  if (record.code != 0 || record.flags != 0) return "rewrite takes no code or flags";
  if (record.a.empty()) return "rewrite needs a target";
  if (std::string problem = check_header_value(record.a); !problem.empty()) return "target " + problem;
  return check_template(record.a, captures);
}

std::string check_upstream_host(const PolicyRecord& record, bool) {
  if (record.a.empty()) return "upstream host is empty";
  return check_header_value(record.a);
}

std::string check_forwarded_prefix(const PolicyRecord& record, bool) {
  if (record.a.empty()) return "forwarded prefix is empty";
  return check_header_value(record.a);
}

std::string check_mirror(const PolicyRecord& record, bool) {
  if (record.code != 0) return "mirror takes no code";
  if (record.value >= kMirrorWhole) return "mirror share is not below 1,000,000 millionths (0 is every request)";
  if ((record.flags & ~kMirrorFlags) != 0) return "unknown mirror flags";
  if (record.backend != kNoRecordBackend) {
    if (!record.a.starts_with("/") && !record.a.starts_with("$")) return "a mirror to a backend takes a path template";
  } else {
    if (!record.a.starts_with("http://") && !record.a.starts_with("https://")) return "mirror target is not an http(s) URL";
    if (record.b.empty()) return "mirror host is empty";
  }
  if (std::string problem = check_header_value(record.a); !problem.empty()) return "mirror target " + problem;
  if (std::string problem = check_header_value(record.b); !problem.empty()) return "mirror host " + problem;
  return check_template(record.a, false);
}

std::string check_protocol(const PolicyRecord& record, bool) {
  if (record.code < kHttp || record.code > kLastProtocol) return "unknown upstream protocol";
  if ((record.flags & ~kProtocolFlags) != 0) return "unknown protocol flags";
  const std::uint8_t low = min_tls_version(record.value);
  const std::uint8_t high = max_tls_version(record.value);
  if (low > 4 || high > 4 || (low != 0 && high != 0 && low > high)) return "bad TLS version range";
  if ((record.value >> 24 & 0xff) != 0) return "unknown protocol numbers";
  if (ca_length(record.value) > record.b.size()) return "CA length beyond the PEM";
  if ((record.flags & kVerify) != 0 && ca_length(record.value) == 0)
    return "verification needs CA certificates";
  const std::size_t space = record.a.find(' ');
  if (space == std::string::npos ? record.a.size() > kMaxTlsName
                                 : space > kMaxTlsName || record.a.size() - space - 1 > kMaxCipherList)
    return "TLS name or cipher list too long";
  return check_header_value(record.a);
}

}  // namespace kroute::policy
