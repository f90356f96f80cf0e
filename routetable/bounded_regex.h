// PCRE2 as kroute uses it for request data (regex paths, header patterns): compiled with
// PCRE2_NEVER_BACKSLASH_C plus the caller's options, and matched with a bound on the work one match may
// do (kPatternMatchLimit, path_patterns.h), so a hostile pattern cannot stall a worker. Internal to
// routetable/: the callers include <pcre2.h> with 8-bit code units.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kroute {

struct RegexCodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
using RegexCode = std::unique_ptr<pcre2_code, RegexCodeDeleter>;

// Null when `pattern` does not compile; then `error` (may be null) says why and where.
RegexCode compile_regex(std::string_view pattern, std::uint32_t options, std::string* error);

// What a match needs besides the pattern: match data for `groups` groups and a context with the work
// bound. JIT matches use PCRE2's default JIT stack and allocate nothing; interpreted ones are bounded in
// depth and heap as well. Made once per set of patterns, never per match.
struct BoundedMatch {
  explicit BoundedMatch(std::uint32_t groups);
  ~BoundedMatch();
  BoundedMatch(const BoundedMatch&) = delete;
  BoundedMatch& operator=(const BoundedMatch&) = delete;
  bool usable() const { return data != nullptr && context != nullptr; }
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
};

}  // namespace kroute
