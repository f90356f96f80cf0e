// kMirror: a copy of each request of the rule goes to the URL template `a` (template.h; the agent
// allows only $request_uri in it), with Host `b`; the copy's answer is ignored and the request does not
// wait for it. kMirrorRequestBody: the copy carries the request body. Made from ingress-nginx's
// mirror-target, mirror-host and mirror-request-body; applied by ngx_http_kroute_mirror_module.c.
#pragma once

#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

enum MirrorFlags : std::uint32_t {
  kMirrorRequestBody = 1,
};
inline constexpr std::uint32_t kMirrorFlags = kMirrorRequestBody;

inline PolicyRecord mirror(std::string target, std::string host, bool request_body) {
  return {.kind = PolicyKind::kMirror,
          .flags = request_body ? std::uint32_t{kMirrorRequestBody} : 0u,
          .a = std::move(target),
          .b = std::move(host)};
}

std::string check_mirror(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
