#define PCRE2_CODE_UNIT_WIDTH 8
#include "value_patterns.h"

#include <pcre2.h>

#include "path_patterns.h"

namespace kroute {

namespace {

constexpr std::uint32_t kCompileOptions = PCRE2_NEVER_BACKSLASH_C;

pcre2_code* compile(std::string_view pattern, std::string* error) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), kCompileOptions,
                                       &code, &offset, nullptr);
  if (compiled == nullptr && error != nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    *error = "invalid regular expression at offset " + std::to_string(offset) + ": " +
             reinterpret_cast<const char*>(message);
  }
  return compiled;
}

}  // namespace

struct ValuePatterns::Compiled {
  explicit Compiled(pcre2_code* c) : code(c) { pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); }
  ~Compiled() { pcre2_code_free(code); }
  pcre2_code* code;
};

struct ValuePatterns::Matcher {
  Matcher() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (context != nullptr) {
      pcre2_set_match_limit(context, kPatternMatchLimit);
      pcre2_set_depth_limit(context, 1000);
      pcre2_set_heap_limit(context, 1024);  // KiB
    }
  }
  ~Matcher() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
  }
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
};

std::string check_value_pattern(std::string_view pattern) {
  std::string error;
  pcre2_code* code = compile(pattern, &error);
  pcre2_code_free(code);
  return error;
}

ValuePatterns::ValuePatterns() : matcher_(std::make_unique<Matcher>()) {}
ValuePatterns::~ValuePatterns() = default;

bool ValuePatterns::matches(std::string_view pattern, std::string_view value) noexcept {
  if (matcher_->data == nullptr || matcher_->context == nullptr) return false;
  try {
    std::unique_ptr<Compiled> once;
    const Compiled* compiled = nullptr;
    if (auto it = patterns_.find(pattern); it != patterns_.end()) {
      compiled = it->second.get();
    } else {
      pcre2_code* code = compile(pattern, nullptr);
      if (code == nullptr) return false;
      once = std::make_unique<Compiled>(code);
      compiled = once.get();
      if (patterns_.size() < kMaxPatterns) patterns_.emplace(std::string(pattern), std::move(once));
    }
    return pcre2_match(compiled->code, reinterpret_cast<PCRE2_SPTR>(value.data()), value.size(), 0, 0,
                       matcher_->data, matcher_->context) >= 0;
  } catch (...) {
    return false;
  }
}

}  // namespace kroute
