// Regex rule paths (ingress-nginx's use-regex) and regex match conditions (Gateway API header and query
// parameter RegularExpression matches): compiled with PCRE2 once per pattern in a process, JIT
// compiled, and matched with a bound on the work one match may do, so a hostile pattern cannot stall a
// worker. Why PCRE2 and not RE2: a match allocates nothing and takes no lock (RE2's lazy DFA allocates
// states and locks its cache during a search), which the request path requires; nginx itself matches
// regex locations with PCRE2 JIT. docs/route-table.md has the measurements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kroute {

class SnapshotView;

// Groups a regex path captured: (start, end) offsets into the path, group 0 first.
struct PathCaptures {
  static constexpr std::uint32_t kMaxGroups = 10;  // $0..$9
  std::uint32_t count = 0;
  std::uint32_t spans[2 * kMaxGroups] = {};
};

// The work bound of one match (PCRE2's match limit): a match that hits it counts as no match.
inline constexpr std::uint32_t kPatternMatchLimit = 1000;

// "" when `pattern` compiles as a kroute path pattern; else PCRE2's message and where.
std::string check_path_pattern(std::string_view pattern);
// The same for a match condition's pattern: case-sensitive, matched against the whole value.
std::string check_condition_pattern(std::string_view pattern);

// How a pattern is compiled: a path (any case, anchored at the start) or a condition's value (case-
// sensitive, the whole value).
enum class PatternUse : std::uint8_t { kPath, kCondition };

class CompiledPattern;

// Compiled patterns by text, kept across snapshots so a new generation compiles only new patterns.
class PatternCache {
 public:
  std::shared_ptr<const CompiledPattern> get(std::string_view pattern, PatternUse use = PatternUse::kPath);
  // Forgets patterns no live PathPatterns uses any more.
  void trim();
  std::size_t size() const { return patterns_.size(); }
  // Matches that hit the work bound, in every set made from this cache (a worker's total).
  std::uint64_t limit_hits() const { return *limit_hits_; }

 private:
  friend class PathPatterns;
  std::unordered_map<std::string, std::shared_ptr<const CompiledPattern>> patterns_;
  std::shared_ptr<std::uint64_t> limit_hits_ = std::make_shared<std::uint64_t>(0);
};

// The compiled patterns of one snapshot: its regex rules' paths, by rule index, and its regex match
// conditions, by condition index.
class PathPatterns {
 public:
  PathPatterns(const SnapshotView& view, PatternCache& cache);
  ~PathPatterns();
  PathPatterns(const PathPatterns&) = delete;
  PathPatterns& operator=(const PathPatterns&) = delete;

  // Whether rule `rule`'s pattern matches `path` (anchored at its start, any case); fills `captures`
  // (may be null). False for a rule without a compiled pattern. Allocation-free.
  bool match(std::uint32_t rule, std::string_view path, PathCaptures* captures) const noexcept;
  // Whether regex condition `condition`'s pattern matches all of `value`. False for a condition without
  // a compiled pattern. Allocation-free.
  bool match_condition(std::uint32_t condition, std::string_view value) const noexcept;
  std::size_t compiled() const { return compiled_; }
  std::size_t failed() const { return failed_; }
  // Matches that hit the work bound, counted in the cache this set was made from.
  std::uint64_t limit_hits() const { return *limit_hits_; }

 private:
  int run(const CompiledPattern& pattern, std::string_view subject) const noexcept;

  std::vector<std::shared_ptr<const CompiledPattern>> by_rule_;
  std::vector<std::shared_ptr<const CompiledPattern>> by_condition_;
  struct Matcher;
  std::unique_ptr<Matcher> matcher_;
  std::size_t compiled_ = 0;
  std::size_t failed_ = 0;
  std::shared_ptr<std::uint64_t> limit_hits_;
};

}  // namespace kroute
