#include "value_patterns.h"

#include "bounded_regex.h"

namespace kroute {

struct ValuePatterns::Compiled {
  explicit Compiled(RegexCode c) : code(std::move(c)) { pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE); }
  RegexCode code;
};

// Case-sensitive and unanchored: ngx.re.match's defaults.
struct ValuePatterns::Matcher : BoundedMatch {
  Matcher() : BoundedMatch(1) {}
};

std::string check_value_pattern(std::string_view pattern) {
  std::string error;
  compile_regex(pattern, 0, &error);
  return error;
}

ValuePatterns::ValuePatterns() : matcher_(std::make_unique<Matcher>()) {}
ValuePatterns::~ValuePatterns() = default;

bool ValuePatterns::matches(std::string_view pattern, std::string_view value) noexcept {
  if (!matcher_->usable()) return false;
  try {
    std::unique_ptr<Compiled> once;
    const Compiled* compiled = nullptr;
    if (auto it = patterns_.find(pattern); it != patterns_.end()) {
      compiled = it->second.get();
    } else {
      RegexCode code = compile_regex(pattern, 0, nullptr);
      if (!code) return false;
      once = std::make_unique<Compiled>(std::move(code));
      compiled = once.get();
      if (patterns_.size() < kMaxPatterns) patterns_.emplace(std::string(pattern), std::move(once));
    }
    return pcre2_match(compiled->code.get(), reinterpret_cast<PCRE2_SPTR>(value.data()), value.size(), 0, 0,
                       matcher_->data, matcher_->context) >= 0;
  } catch (...) {
    return false;
  }
}

}  // namespace kroute
