// kUpstreamHost and kForwardedPrefix: request headers sent upstream, as the module's variables
// $kroute_upstream_host and $kroute_forwarded_prefix that nginx.conf's proxy_set_header lines use.
// From ingress-nginx's upstream-vhost and x-forwarded-prefix.
#pragma once

#include <string>

#include "record.h"

namespace kroute::policy {

inline PolicyRecord upstream_host(std::string host) { return {.kind = PolicyKind::kUpstreamHost, .a = std::move(host)}; }
inline PolicyRecord forwarded_prefix(std::string prefix) {
  return {.kind = PolicyKind::kForwardedPrefix, .a = std::move(prefix)};
}

// "" when `value` can be sent as a header value as it is (printable, no line breaks); else why not.
std::string check_header_value(std::string_view value);
// Whether `name` is a header field name: an RFC 9110 token (letters, digits, !#$%&'*+-.^_`|~), 1-256 bytes.
bool is_header_name(std::string_view name);
std::string check_upstream_host(const PolicyRecord& record, bool captures);
std::string check_forwarded_prefix(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
