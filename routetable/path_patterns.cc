#include "path_patterns.h"

#include <algorithm>

#include "bounded_regex.h"
#include "format.h"
#include "snapshot.h"

namespace kroute {

namespace {

// As nginx's `location ~*`: any case, and (as ingress-nginx writes "^path") anchored at the start.
constexpr std::uint32_t kCompileOptions = PCRE2_CASELESS | PCRE2_ANCHORED;
// A condition's value matches as a whole and case-sensitively, as Envoy's safe_regex matchers do (the
// Gateway API leaves the dialect to the implementation).
constexpr std::uint32_t kConditionOptions = PCRE2_ANCHORED | PCRE2_ENDANCHORED;

RegexCode compile(std::string_view pattern, std::string* error, PatternUse use = PatternUse::kPath) {
  return compile_regex(pattern, use == PatternUse::kPath ? kCompileOptions : kConditionOptions, error);
}

}  // namespace

class CompiledPattern {
 public:
  explicit CompiledPattern(RegexCode code) : code_(std::move(code)) {
    jit_ = pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE) == 0;
  }
  pcre2_code* code() const { return code_.get(); }
  bool jit() const { return jit_; }

 private:
  RegexCode code_;
  bool jit_ = false;
};

std::string check_path_pattern(std::string_view pattern) {
  std::string error;
  if (!compile(pattern, &error)) return error;
  return {};
}

std::string check_condition_pattern(std::string_view pattern) {
  std::string error;
  if (!compile(pattern, &error, PatternUse::kCondition)) return error;
  return {};
}

std::shared_ptr<const CompiledPattern> PatternCache::get(std::string_view pattern, PatternUse use) {
  // One cache for both uses: the key says how the text was compiled.
  std::string key(1, use == PatternUse::kPath ? 'p' : 'c');
  key.append(pattern);
  auto it = patterns_.find(key);
  if (it != patterns_.end()) return it->second;
  auto code = compile(pattern, nullptr, use);
  if (!code) return nullptr;
  auto compiled = std::make_shared<const CompiledPattern>(std::move(code));
  patterns_.emplace(key, compiled);
  return compiled;
}

void PatternCache::trim() {
  std::erase_if(patterns_, [](const auto& entry) { return entry.second.use_count() == 1; });
}

struct PathPatterns::Matcher : BoundedMatch {
  Matcher() : BoundedMatch(PathCaptures::kMaxGroups) {}
};

PathPatterns::PathPatterns(const SnapshotView& view, PatternCache& cache) : limit_hits_(cache.limit_hits_) {
  const auto conditions = view.conditions();
  for (std::uint32_t c = 0; c < conditions.size(); ++c) {
    const format::ConditionKind kind = conditions[c].kind;
    if (kind != format::ConditionKind::kHeaderRegex && kind != format::ConditionKind::kQueryRegex) continue;
    if (by_condition_.empty()) by_condition_.resize(conditions.size());
    by_condition_[c] = cache.get(view.str(conditions[c].value), PatternUse::kCondition);
    if (by_condition_[c]) {
      ++compiled_;
    } else {
      ++failed_;
    }
  }
  // Most tables have no regex host: then a pickup costs one pass over the hosts, nothing more.
  const auto hosts = view.hosts();
  const bool regex_hosts = std::any_of(hosts.begin(), hosts.end(),
                                       [](const format::HostEntry& h) { return (h.flags & format::kRegexPaths) != 0; });
  if (regex_hosts || !by_condition_.empty()) matcher_ = std::make_unique<Matcher>();
  if (!regex_hosts) return;
  by_rule_.resize(view.rules().size());
  for (const format::HostEntry& host : view.hosts()) {
    if ((host.flags & format::kRegexPaths) == 0) continue;
    for (std::uint32_t r = host.first_rule; r < host.first_rule + host.rule_count; ++r) {
      by_rule_[r] = cache.get(view.str(view.rules()[r].path));
      if (by_rule_[r]) {
        ++compiled_;
      } else {
        ++failed_;
      }
    }
  }
}

PathPatterns::~PathPatterns() = default;

// One bounded match of `subject`: PCRE2's result (negative: no match), the groups in the matcher's data.
// A match that reaches the work bound counts as none, and is counted.
int PathPatterns::run(const CompiledPattern& pattern, std::string_view subject) const noexcept {
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const int rc = pattern.jit() ? pcre2_jit_match(pattern.code(), text, subject.size(), 0, 0, matcher_->data,
                                                 matcher_->context)
                               : pcre2_match(pattern.code(), text, subject.size(), 0, 0, matcher_->data,
                                             matcher_->context);
  if (rc < 0) {
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT)
      ++*limit_hits_;
  }
  return rc;
}

bool PathPatterns::match_condition(std::uint32_t condition, std::string_view value) const noexcept {
  if (condition >= by_condition_.size() || !by_condition_[condition] || !matcher_ || !matcher_->usable())
    return false;
  return run(*by_condition_[condition], value) >= 0;
}

bool PathPatterns::match(std::uint32_t rule, std::string_view path, PathCaptures* captures) const noexcept {
  if (rule >= by_rule_.size() || !by_rule_[rule] || !matcher_ || !matcher_->usable())
    return false;
  const int rc = run(*by_rule_[rule], path);
  if (rc < 0) return false;
  if (captures != nullptr) {
    // rc == 0: more groups than the match data holds; the first kMaxGroups are there.
    const std::uint32_t groups = rc == 0 ? PathCaptures::kMaxGroups : static_cast<std::uint32_t>(rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(matcher_->data);
    captures->count = groups;
    for (std::uint32_t i = 0; i < 2 * groups; ++i) {
      captures->spans[i] = ovector[i] == PCRE2_UNSET ? 1 : static_cast<std::uint32_t>(ovector[i]);
    }
    // An unset group: start 1 > end 0, which expands to nothing.
    for (std::uint32_t g = 0; g < groups; ++g) {
      if (ovector[2 * g] == PCRE2_UNSET) captures->spans[2 * g + 1] = 0;
    }
  }
  return true;
}

}  // namespace kroute
