// Host names: normalizing what a client sent, and checking what an Ingress declares.
#pragma once

#include <string>
#include <string_view>

#include "format.h"

namespace kroute {

// Buffer for a normalized request host; lookups keep it on the stack.
struct HostBuffer {
  char bytes[format::kMaxHostLength + 1];
};

// Lowercases `raw`, drops a ":port" (also after an IPv6 "[...]" literal) and one trailing dot.
// Returns a view into `buffer`, or an empty view when the host is empty or too long to be a DNS name.
std::string_view normalize_request_host(std::string_view raw, HostBuffer& buffer) noexcept;

// What keeps `label` from being an RFC 1123 label: lowercase letters, digits and '-', starting and ending
// with a letter or digit, 1 to 63 characters. The one rule for host names and the agent's object names.
enum class LabelProblem { kNone, kEmpty, kTooLong, kCharacter, kHyphenAtEdge };
LabelProblem dns_label_problem(std::string_view label) noexcept;

// Checks an Ingress rule host: a DNS name of RFC 1123 labels (lowercased here first), optionally "*." plus
// a name for a one-label wildcard. Returns an error message, or "" when valid; `normalized` receives the
// lowercase form.
std::string check_rule_host(std::string_view host, std::string& normalized);

}  // namespace kroute
