#include "conditions.h"

#include <algorithm>
#include <tuple>

#include "path_patterns.h"
#include "policy/headers.h"

namespace kroute {

namespace {

using format::ConditionKind;

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Walks `raw` decoded, one byte at a time.
class Decoder {
 public:
  explicit Decoder(std::string_view raw) noexcept : raw_(raw) {}
  bool done() const noexcept { return at_ >= raw_.size(); }
  char next() noexcept {
    if (raw_[at_] == '%' && at_ + 2 < raw_.size()) {
      const int high = hex_digit(raw_[at_ + 1]);
      const int low = hex_digit(raw_[at_ + 2]);
      if (high >= 0 && low >= 0) {
        at_ += 3;
        return static_cast<char>(high << 4 | low);
      }
    }
    return raw_[at_++];
  }

 private:
  std::string_view raw_;
  std::size_t at_ = 0;
};

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  return text;
}

int group_of(ConditionKind kind) {
  switch (kind) {
    case ConditionKind::kMethod: return 0;
    case ConditionKind::kHeaderExact:
    case ConditionKind::kHeaderRegex: return 1;
    case ConditionKind::kQueryExact:
    case ConditionKind::kQueryRegex: return 2;
  }
  return 3;
}

bool is_regex(ConditionKind kind) { return kind == ConditionKind::kHeaderRegex || kind == ConditionKind::kQueryRegex; }

}  // namespace

bool decoded_equals(std::string_view raw, std::string_view text) noexcept {
  if (raw.size() < text.size()) return false;  // decoding only shortens
  Decoder decoder(raw);
  std::size_t i = 0;
  while (!decoder.done()) {
    if (i == text.size() || decoder.next() != text[i]) return false;
    ++i;
  }
  return i == text.size();
}

std::size_t percent_decode(std::string_view raw, char* out) noexcept {
  Decoder decoder(raw);
  std::size_t n = 0;
  while (!decoder.done()) out[n++] = decoder.next();
  return n;
}

bool find_query_param(std::string_view args, std::string_view name, std::string_view& raw_value) noexcept {
  while (!args.empty()) {
    const std::size_t amp = args.find('&');
    const std::string_view pair = args.substr(0, amp);
    args = amp == std::string_view::npos ? std::string_view() : args.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (!decoded_equals(key, name)) continue;
    raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return true;
  }
  return false;
}

bool condition_holds(ConditionKind kind, std::string_view name, std::string_view value, std::uint32_t index,
                     const RequestData& request, const PathPatterns* patterns) noexcept {
  std::string_view found;
  switch (kind) {
    case ConditionKind::kMethod: return request.method == value;
    case ConditionKind::kHeaderExact:
      return request.header != nullptr && request.header(request.context, name, found) && found == value;
    case ConditionKind::kHeaderRegex:
      return patterns != nullptr && request.header != nullptr && request.header(request.context, name, found) &&
             patterns->match_condition(index, found);
    case ConditionKind::kQueryExact: return find_query_param(request.args, name, found) && decoded_equals(found, value);
    case ConditionKind::kQueryRegex: {
      if (patterns == nullptr || !find_query_param(request.args, name, found)) return false;
      if (found.find('%') == std::string_view::npos) return patterns->match_condition(index, found);
      char* decoded = request.scratch != nullptr ? request.scratch(request.context, found.size()) : nullptr;
      if (decoded == nullptr) return false;
      return patterns->match_condition(index, {decoded, percent_decode(found, decoded)});
    }
  }
  return false;
}

CanonicalConditions canonical_conditions(const std::vector<MatchCondition>& conditions) {
  CanonicalConditions out;
  auto fail = [&](std::string problem) {
    out.conditions.clear();
    out.problem = std::move(problem);
    return out;
  };
  for (const MatchCondition& given : conditions) {
    MatchCondition c = given;
    const std::string what = std::string(condition_kind_name(c.kind)) + " condition";
    switch (c.kind) {
      case ConditionKind::kMethod:
        if (!c.name.empty()) return fail(what + " takes no name");
        if (!policy::is_header_name(c.value)) return fail(what + ": the method must be a token (\"GET\")");
        break;
      case ConditionKind::kHeaderExact:
      case ConditionKind::kHeaderRegex:
        if (!policy::is_header_name(c.name)) return fail(what + ": the header name must be a token (letters, digits, -)");
        c.name = lowercase(std::move(c.name));
        break;
      case ConditionKind::kQueryExact:
      case ConditionKind::kQueryRegex:
        if (c.name.empty()) return fail(what + ": the query parameter name is empty");
        if (std::string problem = policy::check_header_value(c.name); !problem.empty())
          return fail(what + ": the query parameter name " + problem);
        break;
      default: return fail("unknown condition kind " + std::to_string(static_cast<unsigned>(c.kind)));
    }
    if (std::string problem = policy::check_header_value(c.value); !problem.empty())
      return fail(what + " \"" + c.name + "\": the value " + problem);
    if (is_regex(c.kind)) {
      if (std::string problem = check_condition_pattern(c.value); !problem.empty())
        return fail(what + " \"" + c.name + "\": " + problem);
    }
    // The first of each name counts (a method is one name); later ones are ignored, as the spec says.
    const bool repeated = std::any_of(out.conditions.begin(), out.conditions.end(), [&](const MatchCondition& kept) {
      return group_of(kept.kind) == group_of(c.kind) && kept.name == c.name;
    });
    if (!repeated) out.conditions.push_back(std::move(c));
  }
  std::sort(out.conditions.begin(), out.conditions.end(), [](const MatchCondition& a, const MatchCondition& b) {
    return std::make_tuple(group_of(a.kind), std::string_view(a.name), a.kind, std::string_view(a.value)) <
           std::make_tuple(group_of(b.kind), std::string_view(b.name), b.kind, std::string_view(b.value));
  });
  return out;
}

ConditionWeight condition_weight(const std::vector<MatchCondition>& canonical) noexcept {
  ConditionWeight weight;
  for (const MatchCondition& c : canonical) {
    switch (group_of(c.kind)) {
      case 0: weight.method = true; break;
      case 1: ++weight.headers; break;
      case 2: ++weight.queries; break;
      default: break;
    }
  }
  return weight;
}

const char* condition_kind_name(ConditionKind kind) noexcept {
  switch (kind) {
    case ConditionKind::kMethod: return "Method";
    case ConditionKind::kHeaderExact: return "HeaderExact";
    case ConditionKind::kHeaderRegex: return "HeaderRegex";
    case ConditionKind::kQueryExact: return "QueryExact";
    case ConditionKind::kQueryRegex: return "QueryRegex";
  }
  return "Unknown";
}

}  // namespace kroute
