#include "bounded_regex.h"

#include "path_patterns.h"

namespace kroute {

RegexCode compile_regex(std::string_view pattern, std::uint32_t options, std::string* error) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  RegexCode compiled(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options | PCRE2_NEVER_BACKSLASH_C, &code, &offset, nullptr));
  if (!compiled && error != nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    *error = "invalid regular expression at offset " + std::to_string(offset) + ": " +
             reinterpret_cast<const char*>(message);
  }
  return compiled;
}

BoundedMatch::BoundedMatch(std::uint32_t groups) {
  data = pcre2_match_data_create(groups, nullptr);
  context = pcre2_match_context_create(nullptr);
  if (context != nullptr) {
    pcre2_set_match_limit(context, kPatternMatchLimit);
    pcre2_set_depth_limit(context, 1000);
    pcre2_set_heap_limit(context, 1024);  // KiB
  }
}

BoundedMatch::~BoundedMatch() {
  pcre2_match_data_free(data);
  pcre2_match_context_free(context);
}

}  // namespace kroute
