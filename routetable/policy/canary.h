// kCanary: some requests of a rule go to the record's `backend` (a canary Ingress's Service) instead of
// the rule's own. One record per condition, in the order ingress-nginx's balancer.lua tries them
// (route_to_alternative_balancer): header, then cookie, then weight; the first that decides wins. Made
// by the agent (agent/ingress/canary.cc) from a canary Ingress merged into its primary's rule; applied
// per request by ngx_http_kroute_canary_module.c.
//   code kByHeader: header `a`; `b` "": the values "always" / "never" decide; else the value must equal
//                   `b` (flag kPattern: match regex `b` anywhere in the value, as ngx.re.match does).
//                   A value that matches nothing leaves the decision to the next record.
//   code kByCookie: cookie `a` "always" / "never" decides.
//   code kByWeight: value = weight << 32 | total; the canary takes weight/total of what is left.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum CanaryCode : std::uint16_t { kByHeader = 1, kByCookie = 2, kByWeight = 3 };
enum CanaryFlags : std::uint32_t { kPattern = 1 };

// ingress-nginx's default canary-weight-total.
inline constexpr std::uint32_t kDefaultWeightTotal = 100;

inline PolicyRecord canary_by_header(std::string header, std::string value, bool pattern) {
  return {.kind = PolicyKind::kCanary, .code = kByHeader, .flags = pattern ? std::uint32_t{kPattern} : 0u,
          .a = std::move(header), .b = std::move(value)};
}
inline PolicyRecord canary_by_cookie(std::string cookie) {
  return {.kind = PolicyKind::kCanary, .code = kByCookie, .a = std::move(cookie)};
}
inline PolicyRecord canary_by_weight(std::uint32_t weight, std::uint32_t total) {
  return {.kind = PolicyKind::kCanary, .code = kByWeight,
          .value = (std::uint64_t{weight} << 32) | total};
}

enum class CanaryVerdict { kCanary, kPrimary, kUndecided };

// What a header or cookie value says when no exact value is asked for: "always" / "never".
inline CanaryVerdict canary_by_keyword(std::string_view value) noexcept {
  if (value == "always") return CanaryVerdict::kCanary;
  if (value == "never") return CanaryVerdict::kPrimary;
  return CanaryVerdict::kUndecided;
}

// Weight `weight` of `total` (ingress-nginx: math.random(total) <= weight), from a uniform random number.
inline bool canary_by_weight_draw(std::uint64_t packed, std::uint64_t random) noexcept {
  const auto weight = static_cast<std::uint32_t>(packed >> 32);
  const auto total = static_cast<std::uint32_t>(packed);
  if (weight == 0 || total == 0) return false;
  return random % total < weight;
}

std::string check_canary(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
