// kMirror: a copy of each request of the rule goes to the URL template `a` (template.h; the agent
// allows only $request_uri in it), with Host `b`; the copy's answer is ignored and the request does not
// wait for it. kMirrorRequestBody: the copy carries the request body. Made from ingress-nginx's
// mirror-target, mirror-host and mirror-request-body; applied by ngx_http_kroute_mirror_module.c.
#pragma once

#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

//
// A rule may have several. With a `backend` (the Gateway API's RequestMirror filter), the copy goes over
// HTTP to one of that backend's ready endpoints, picked as the balancer picks (round robin; none ready:
// no copy): `a` is then the path and query template ("$request_uri"), and an empty `b` keeps the
// request's Host. `value`: 0 copies every request; 1..kMirrorWhole copies that many millionths of them,
// chosen at random per request (the filter's percent and fraction).
enum MirrorFlags : std::uint32_t {
  kMirrorRequestBody = 1,
};
inline constexpr std::uint32_t kMirrorFlags = kMirrorRequestBody;
inline constexpr std::uint64_t kMirrorWhole = 1000000;

inline PolicyRecord mirror(std::string target, std::string host, bool request_body) {
  return {.kind = PolicyKind::kMirror,
          .flags = request_body ? std::uint32_t{kMirrorRequestBody} : 0u,
          .a = std::move(target),
          .b = std::move(host)};
}

inline PolicyRecord mirror_to_backend(std::uint32_t backend, std::uint64_t millionths) {
  return {.kind = PolicyKind::kMirror,
          .flags = kMirrorRequestBody,
          .backend = backend,
          .value = millionths >= kMirrorWhole ? 0 : millionths,
          .a = "$request_uri"};
}

std::string check_mirror(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
