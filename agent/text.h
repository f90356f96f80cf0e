// Small text helpers shared by the config loader and the object projections.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kroute::agent {

// Standard base64 (padding and line breaks allowed); false on any other character.
bool base64_decode(std::string_view in, std::string& out);
std::string trim(std::string_view s);
// RFC 3339 UTC ("2024-01-02T03:04:05Z", fractions ignored) to Unix seconds; false when malformed.
bool parse_rfc3339(std::string_view text, std::int64_t& unix_seconds);
// Now as RFC 3339 UTC with `fraction_digits` (0, 3 or 6) after the seconds: 6 is Kubernetes
// MicroTime, 0 its Time, 3 the logs'.
std::string now_rfc3339(int fraction_digits = 0);
inline std::string now_rfc3339_micro() { return now_rfc3339(6); }

}  // namespace kroute::agent
