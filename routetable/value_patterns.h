// Regular expressions matched against request values (canary-by-header-pattern), as ingress-nginx's
// ngx.re.match does: PCRE, case-sensitive, anywhere in the value. Compiled (and JIT compiled) on first
// use by a worker and kept, a bounded number of them; matched with the same work bound as regex paths
// (path_patterns.h), allocation-free once compiled.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kroute {

// "" when `pattern` compiles; else PCRE2's message and where.
std::string check_value_pattern(std::string_view pattern);

class ValuePatterns {
 public:
  // Patterns kept at most; a new one beyond that is compiled for one match and dropped.
  static constexpr std::size_t kMaxPatterns = 256;
  ValuePatterns();
  ~ValuePatterns();
  ValuePatterns(const ValuePatterns&) = delete;
  ValuePatterns& operator=(const ValuePatterns&) = delete;
  // False also when the pattern does not compile or the match reaches the work bound.
  bool matches(std::string_view pattern, std::string_view value) noexcept;

 private:
  struct Compiled;
  struct Matcher;
  struct Hash {  // finds a pattern by string_view: no allocation per match
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Compiled>, Hash, std::equal_to<>> patterns_;
  std::unique_ptr<Matcher> matcher_;
};

}  // namespace kroute
