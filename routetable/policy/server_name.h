// kServerName: which TLS server names (SNI) may carry requests for a host. A Gateway's HTTPS listener
// with a hostname is chosen by the client's SNI, and serves only the routes attached to it; a request
// whose Host names a route of that listener over a connection whose SNI chose another listener (or
// none) is not that listener's (the Gateway API conformance test HTTPRouteHTTPSListener answers 404).
// Host-wide records (HostPolicy), one per pattern, `a` the listener's hostname: "second.example.org",
// or "*.example.org" for any name under example.org (any number of labels, the Gateway API's wildcard).
// On a TLS connection the request passes when its SNI (lower-cased, without a trailing dot) matches any
// of the host's records; a TLS connection without SNI and any plain HTTP request always pass. A host
// without the records takes any SNI, as every Ingress host does. Applied by the module before any
// other record of the host (ngx_http_kroute_server_name_module.c); the answer is 404, as for a host
// that has no route.
#pragma once

#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

inline PolicyRecord server_name(std::string pattern) {
  return {.kind = PolicyKind::kServerName, .a = std::move(pattern)};
}

// "" when `record` is a valid kServerName record (a host name or a "*." wildcard of one); else why not.
std::string check_server_name(const PolicyRecord& record, bool captures);

// Whether a TLS server name as the client sent it (any case, perhaps with a trailing dot) falls under
// `pattern`, a record's `a`: equal to it in any case, or for "*.example.org" one or more labels followed by
// ".example.org". Allocation-free: the module calls it per request.
bool server_name_matches(std::string_view pattern, std::string_view server_name) noexcept;

}  // namespace kroute::policy
