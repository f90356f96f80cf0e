// kExternalAuth: ingress-nginx's auth-url family. Before the rule's backend sees a request, a subrequest
// without body goes to an auth service; 2xx lets the request pass, 401/403 go to the client (401 to the
// signin URL when there is one), anything else answers 500. A rule has one record per part, told apart
// by `code` (ExternalAuthPart); only kAuthRequest is required. Applied by
// ngx_http_kroute_auth_request_module.c through nginx.conf's internal location /_kroute_auth.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum ExternalAuthPart : std::uint16_t {
  // a: the auth URL, a template (template.h) whose host is an IP address (the agent resolves a
  // Service's name to its ClusterIP; nginx has no resolver); b: the Host header for it;
  // value: the method (AuthMethod; kAuthSameMethod: GET, as nginx's subrequests); flags: ExternalAuthFlags.
  kAuthRequest = 0,
  // a: where a 401 is redirected to (302), a template with the redirect parameter already appended.
  kAuthSignin = 1,
  // a: names of the auth answer's headers copied to the upstream request, comma-separated.
  kAuthResponseHeaders = 2,
  // a: the X-Auth-Request-Redirect header sent to the auth service, a template (default $request_uri).
  kAuthRequestRedirect = 3,
  // a: the cache key, a cache-key template (check_auth_cache_key); b: how long each status is kept,
  // "status=seconds" separated by spaces, the first match wins (parse_auth_cache_durations); value: a
  // hash of the rule's path, so two rules of a host never share answers (ingress-nginx keys its cache by
  // location).
  kAuthCache = 4,
};
inline constexpr std::uint16_t kLastAuthPart = kAuthCache;

enum ExternalAuthFlags : std::uint32_t {
  kAuthAlwaysSetCookie = 1,  // the auth answer's Set-Cookie goes to the client with any status
};
inline constexpr std::uint32_t kExternalAuthFlags = kAuthAlwaysSetCookie;

// ingress-nginx's auth-method list; 0: not set (the subrequest is a GET).
inline constexpr std::string_view kAuthMethods[] = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                                    "DELETE", "CONNECT", "OPTIONS", "TRACE"};
inline constexpr std::uint64_t kAuthSameMethod = 0;
// 1 + the index in kAuthMethods, or nullopt.
std::optional<std::uint64_t> auth_method(std::string_view method);

// auth-cache-duration ("200 202 401 5m, 404 1m"): entries separated by commas, each statuses then
// durations (ms s m h d w M y, summed), statuses 200 301 302 when none is named, as nginx's
// proxy_cache_valid. The normalized "status=seconds ..." text of kAuthCache's b, or nullopt.
std::optional<std::string> parse_auth_cache_durations(std::string_view text);
// The default: "200 202 401 5m".
inline constexpr std::string_view kDefaultAuthCacheDuration = "200 202 401 5m";

// A cache key: literal text and $name, where name is remote_addr, remote_user, host, http_host, scheme,
// request_uri, uri, args, or http_<header>, cookie_<name>, arg_<name> (lowercase letters, digits, '_').
// The module reads those from nginx's variables; nothing else is ever evaluated. "" or why not.
std::string check_auth_cache_key(std::string_view key);

inline PolicyRecord external_auth(std::string url, std::string host, std::uint64_t method, std::uint32_t flags) {
  return {.kind = PolicyKind::kExternalAuth, .code = kAuthRequest, .flags = flags, .value = method,
          .a = std::move(url), .b = std::move(host)};
}

inline PolicyRecord external_auth_part(ExternalAuthPart part, std::string a, std::string b = {},
                                       std::uint64_t value = 0) {
  return {.kind = PolicyKind::kExternalAuth, .code = part, .value = value, .a = std::move(a), .b = std::move(b)};
}

std::string check_external_auth(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
