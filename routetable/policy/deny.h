// kDeny: the rule answers `code` (503) to every request, before any other policy runs. The access
// annotations (allow and deny lists, basic and external auth, client certificates) fail closed: one the
// agent cannot apply (a bad CIDR, a missing or malformed Secret, a bad auth URL) becomes this record, so
// the rule is never served without the check its Ingress asked for. `a` says why, for kroute-table and
// the error log; it never holds secret material. Applied by ngx_http_kroute_deny_module.c.
#pragma once

#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

inline constexpr std::uint16_t kDenyStatus = 503;

inline PolicyRecord deny(std::string why) {
  return {.kind = PolicyKind::kDeny, .code = kDenyStatus, .a = std::move(why)};
}

std::string check_deny(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
