// Templates in policy records (a redirect's Location, a rewrite's URI): text with a fixed set of
// request values, `$name` or `${name}` ($escaped_request_uri: $request_uri percent-encoded as a query
// value, for ingress-nginx's auth-signin), and `$1`..`$9` for the groups a regex path captured. The set is
// what ingress-nginx users write in these annotations; nothing else is ever evaluated. The agent checks
// a template once (check_template); the module expands it per request into pool memory it sized first
// (template_length, then expand_template), without allocating here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kroute {

// What a template may name, for one request. `captures` holds `capture_count` (start, end) pairs of
// offsets into `subject` (group 0 first); a group that did not take part has start > end.
struct TemplateContext {
  std::string_view scheme;
  std::string_view host;         // $host: the request's host, without port
  std::string_view http_host;    // $http_host: the Host header as sent
  std::string_view request_uri;  // $request_uri: path and query as sent
  std::string_view uri;          // $uri: the normalized path
  std::string_view args;         // $args, $query_string
  std::string_view subject;
  const std::uint32_t* captures = nullptr;
  std::uint32_t capture_count = 0;
  bool trim_trailing_slash = false;  // $request_uri loses one trailing '/' (ingress-nginx's redirects)
  // Decoded values ($uri and the groups, which come from the path nginx decoded) are percent-encoded
  // where they could end a URI or a header line: always after the template's own '?' (as nginx's
  // rewrite escapes them in arguments), and before it too when `escape_path` (a Location header; a
  // rewritten URI stays decoded, as nginx keeps r->uri, and the proxy encodes it).
  bool escape_path = false;
  // Bytes of `uri` the matched rule's path covers (its Prefix, or all of it for Exact): $prefix_rest is what
  // follows ("" or "/..."), $prefix_rest_or_slash the same but "/" for nothing (the Gateway API's
  // ReplacePrefixMatch: the agent writes "<replacement>$prefix_rest", or "$prefix_rest_or_slash" for "/").
  std::size_t prefix_length = 0;
};

// The longest a value in a record may be (a Location, a rewrite target, a header value).
inline constexpr std::size_t kMaxTemplateLength = 4096;

// "" when the template names only known values ($1..$9 only when `captures` is true); else why not.
std::string check_template(std::string_view text, bool captures);

// The expanded length, and the expansion written at `out` (which has room for that length); returns
// the end of what was written. An unknown name (a template that was never checked) expands to nothing.
// `query`, when given, receives the offset in the output of the template's own first '?' (where the
// arguments start), or the output's length when it has none: a '?' that comes from a value is data.
std::size_t template_length(std::string_view text, const TemplateContext& context) noexcept;
char* expand_template(std::string_view text, const TemplateContext& context, char* out,
                      std::size_t* query = nullptr) noexcept;

}  // namespace kroute
