// kCors: Cross-Origin Resource Sharing as ingress-nginx's enable-cors and cors-* annotations set it up.
// `a`: the allowed origins, separated by spaces, each "scheme://host[:port]", "scheme://*.host[:port]"
// (one DNS label in place of the *) or "null", matched whole and case-insensitively against the
// request's Origin; empty with kCorsAnyOrigin ("*": every response gets Access-Control-Allow-Origin: *).
// `b`: "methods\nheaders\nexpose": the values of Access-Control-Allow-Methods, -Allow-Headers and
// -Expose-Headers (the last may be empty: no header). `value`: Access-Control-Max-Age in seconds.
// kCorsCredentials: Access-Control-Allow-Credentials: true. kCorsAnyDepth: a "*." origin's star stands
// for one DNS label or more (the Gateway API's wildcards; ingress-nginx's stand for one). kCorsEcho: the
// Gateway API's "*" lists: the methods or headers may be "*" alone, and with kCorsCredentials (where
// browsers refuse "*") any origin, "*" methods and "*" headers are answered with the request's Origin,
// Access-Control-Request-Method and -Headers. Applied by ngx_http_kroute_cors_module.c:
// a preflight (OPTIONS) from an allowed origin is answered 204 in the rewrite phase, and every response
// to an allowed origin gets the headers (replacing the backend's own of the same names).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum CorsFlags : std::uint32_t {
  kCorsCredentials = 1,
  kCorsAnyOrigin = 2,
  kCorsAnyDepth = 4,
  kCorsEcho = 8,
};
inline constexpr std::uint32_t kCorsFlags = kCorsCredentials | kCorsAnyOrigin | kCorsAnyDepth | kCorsEcho;

// ingress-nginx's defaults (internal/ingress/annotations/cors/main.go).
inline constexpr std::string_view kDefaultCorsMethods = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
inline constexpr std::string_view kDefaultCorsHeaders =
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
inline constexpr std::uint64_t kDefaultCorsMaxAge = 1728000;
inline constexpr std::size_t kMaxCorsList = 4096;

inline PolicyRecord cors(std::uint32_t flags, std::string origins, std::string_view methods,
                         std::string_view headers, std::string_view expose, std::uint64_t max_age) {
  std::string b;
  b.append(methods).append("\n").append(headers).append("\n").append(expose);
  return {.kind = PolicyKind::kCors, .flags = flags, .value = max_age, .a = std::move(origins), .b = std::move(b)};
}

// One entry of cors-allow-origin as ingress-nginx's corsOriginRegex takes it
// (`[a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?`, or "null"); "*" is the caller's to handle.
bool cors_origin_valid(std::string_view origin);
// cors-allow-methods, -headers and -expose-headers values as ingress-nginx's validators take them
// (the headers one with its intended characters: letters, digits, '-', '_', ',' and spaces).
bool cors_methods_valid(std::string_view value);
bool cors_headers_valid(std::string_view value);
bool cors_expose_headers_valid(std::string_view value);

std::string check_cors(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
