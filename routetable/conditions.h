// Match conditions (Gateway API HTTPRouteMatch: method, headers, query parameters): what a rule needs of
// a request besides host and path, the request data the lookup reads them from, and how each kind is
// checked when a table is built and evaluated when a request is looked up. docs/route-table.md, "Match
// conditions".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format.h"
#include "model.h"

namespace kroute {

class PathPatterns;

// The parts of a request conditions read, given by the caller of SnapshotView::lookup (the nginx module,
// kroute-table lookup, tests). Reading it allocates nothing but what `scratch` hands out, which the
// caller owns (nginx: the request's pool).
struct RequestData {
  std::string_view method;
  std::string_view args;  // the query string as sent, without the '?'
  // The value of header `name` (any case); repeated headers joined with ", " as RFC 9110 (5.3) allows.
  // False when the request has no such header.
  bool (*header)(const void* context, std::string_view name, std::string_view& value) noexcept = nullptr;
  // `size` bytes that live as long as the request (a decoded query value for a regex); null: none.
  char* (*scratch)(const void* context, std::size_t size) noexcept = nullptr;
  const void* context = nullptr;
};

// The raw (still percent-encoded) value of the first query parameter whose name, decoded, is `name`
// (an exact, case-sensitive comparison). "a=1&b&c=" has a = "1", b = "" and c = "". False when absent.
bool find_query_param(std::string_view args, std::string_view name, std::string_view& raw_value) noexcept;
// Whether `raw` percent-decoded equals `text`. A '%' not followed by two hex digits stands for itself;
// '+' is not a space (as in a URL, unlike a form).
bool decoded_equals(std::string_view raw, std::string_view text) noexcept;
// `raw` percent-decoded into `out` (at least raw.size() bytes); returns the decoded length.
std::size_t percent_decode(std::string_view raw, char* out) noexcept;

// Whether `condition` holds for `request`. Regex kinds match with pattern `index` of `patterns` (the
// snapshot's condition index) and fail without them.
bool condition_holds(format::ConditionKind kind, std::string_view name, std::string_view value, std::uint32_t index,
                     const RequestData& request, const PathPatterns* patterns) noexcept;

// A rule's conditions as the builder stores them: the first of each name kept (the Gateway API ignores
// later entries with an equivalent name; header names compare in any case and are lowercased), then
// sorted: the method, headers, query parameters. `problem` says what is wrong when one is not sound
// (an unknown kind, a header name that is not a token, a value with control characters, a regular
// expression that does not compile); the result is then empty.
struct CanonicalConditions {
  std::vector<MatchCondition> conditions;
  std::string problem;
};
CanonicalConditions canonical_conditions(const std::vector<MatchCondition>& conditions);

// What a rule's conditions count for precedence within its (host, path type, path): a method before
// none, then more headers, then more query parameters (Gateway API HTTPRouteRule.matches).
struct ConditionWeight {
  bool method = false;
  std::uint32_t headers = 0;
  std::uint32_t queries = 0;
};
ConditionWeight condition_weight(const std::vector<MatchCondition>& canonical) noexcept;

const char* condition_kind_name(format::ConditionKind kind) noexcept;

}  // namespace kroute
