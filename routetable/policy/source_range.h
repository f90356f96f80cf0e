// kSourceRange: who may reach the rule by client address. `a` is a packed CIDR list (cidr.h); flags say
// whether it is the list the client must be in (kSourceAllow: allowlist-source-range, or its older name
// whitelist-source-range) or the one it must not be in (kSourceDeny: denylist-source-range). A client
// refused by either gets `code` (403). A rule has at most one record of each; the deny list is checked
// first. The client address is the connection's, as nginx's realip module leaves it (the chart's trust
// settings: X-Forwarded-For from trusted proxies, the PROXY protocol). Applied in the access phase by
// module/ngx_http_kroute_access_module.c.
#pragma once

#include <cstdint>
#include <string>

#include "cidr.h"
#include "record.h"

namespace kroute::policy {

enum SourceRangeFlags : std::uint32_t {
  kSourceAllow = 1,  // the client must be in `a`
  kSourceDeny = 2,   // the client must not be in `a`
};
inline constexpr std::uint16_t kSourceRangeStatus = 403;

// `packed`: parse_cidr_list's output, at least one range.
inline PolicyRecord source_range(SourceRangeFlags which, std::string packed) {
  return {.kind = PolicyKind::kSourceRange, .code = kSourceRangeStatus, .flags = which, .a = std::move(packed)};
}

inline std::string check_source_range(const PolicyRecord& record, bool) {
  if (record.code < 400 || record.code > 599) return "status " + std::to_string(record.code) + " is not 400-599";
  if (record.flags != kSourceAllow && record.flags != kSourceDeny) return "source range is neither allow nor deny";
  if (record.value != 0 || !record.b.empty() || record.backend != kNoRecordBackend)
    return "has fields a source range record does not use";
  if (record.a.empty()) return "source range list is empty";
  return check_cidr_list(record.a);
}

}  // namespace kroute::policy
