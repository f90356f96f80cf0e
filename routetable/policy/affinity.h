// kAffinity: session affinity by cookie (ingress-nginx's affinity: cookie). `backend`: the backend it
// applies to (a canary's own), or kNone for the rule's own backend. `a`: the cookie's name; `b`: the
// attributes sent after its value ("; Path=/; Max-Age=..."), rendered by the agent; `value`: Expires,
// seconds from now (0: none). The cookie's value never depends on worker state (routetable/balance.h):
//   code kBalanced: a session key; the endpoint is the key's rendezvous choice among the ready ones, so
//                   sessions spread again when endpoints come and go (ingress-nginx's sticky_balanced).
//   code kPersistent: the endpoint's own id; it keeps its endpoint as long as that endpoint is ready.
// Applied by the module's balancer (ngx_http_kroute_balancer.c); the canary module sends Set-Cookie.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum AffinityCode : std::uint16_t { kBalanced = 0, kPersistent = 1 };
enum AffinityFlags : std::uint32_t {
  kChangeOnFailure = 1,      // a retry elsewhere moves the session (session-cookie-change-on-failure)
  kLegacyCanary = 2,         // affinity-canary-behavior: legacy (the cookie does not keep a canary choice)
  kSecure = 4,               // Secure also over plain HTTP (session-cookie-secure)
  // SameSite=None is left out of `b` and sent only to clients that accept it
  kConditionalSameSiteNone = 8,
};
inline constexpr std::uint32_t kAffinityFlags = kChangeOnFailure | kLegacyCanary | kSecure | kConditionalSameSiteNone;

inline PolicyRecord affinity(std::uint16_t mode, std::uint32_t flags, std::string cookie, std::string attributes,
                             std::uint64_t expires_seconds) {
  return {.kind = PolicyKind::kAffinity, .code = mode, .flags = flags, .value = expires_seconds,
          .a = std::move(cookie), .b = std::move(attributes)};
}

// session-cookie-conditional-samesite-none: whether a client accepts SameSite=None, by its User-Agent
// (Chrome 51-66 and UC Browser before 12.13.2 reject it, iOS 12 and Safari on macOS 10.14 misread it).
bool same_site_none_compatible(std::string_view user_agent) noexcept;

std::string check_affinity(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
