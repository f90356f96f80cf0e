#include "template.h"

#include <algorithm>
#include <cstring>

namespace kroute {

namespace {

enum class Value {
  kUnknown, kScheme, kHost, kHttpHost, kRequestUri, kEscapedRequestUri, kUri, kArgs, kIsArgs, kPrefixRest,
  kPrefixRestOrSlash, kCapture
};

struct Token {
  std::size_t length = 0;  // bytes of the template this token covers
  Value value = Value::kUnknown;
  unsigned group = 0;
  bool literal = true;
};

Value named(std::string_view name) {
  if (name == "scheme") return Value::kScheme;
  if (name == "host") return Value::kHost;
  if (name == "http_host") return Value::kHttpHost;
  if (name == "request_uri") return Value::kRequestUri;
  if (name == "escaped_request_uri") return Value::kEscapedRequestUri;
  if (name == "uri" || name == "document_uri") return Value::kUri;
  if (name == "args" || name == "query_string") return Value::kArgs;
  if (name == "is_args") return Value::kIsArgs;
  if (name == "prefix_rest") return Value::kPrefixRest;
  if (name == "prefix_rest_or_slash") return Value::kPrefixRestOrSlash;
  return Value::kUnknown;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The token at the start of `text`: a run of literal bytes up to the next '$', or one reference. As in
// nginx, `$1`..`$9` is one digit and `$name` runs as far as name characters go.
Token next_token(std::string_view text) {
  Token t;
  if (text.front() != '$') {
    const std::size_t dollar = text.find('$');
    t.length = dollar == std::string_view::npos ? text.size() : dollar;
    return t;
  }
  t.literal = false;
  if (text.size() >= 2 && text[1] >= '1' && text[1] <= '9') {
    t.length = 2;
    t.value = Value::kCapture;
    t.group = static_cast<unsigned>(text[1] - '0');
    return t;
  }
  if (text.size() >= 2 && text[1] == '{') {
    const std::size_t close = text.find('}', 2);
    if (close == std::string_view::npos) {
      t.length = text.size();
      return t;
    }
    t.length = close + 1;
    const std::string_view name = text.substr(2, close - 2);
    if (name.size() == 1 && name[0] >= '1' && name[0] <= '9') {
      t.value = Value::kCapture;
      t.group = static_cast<unsigned>(name[0] - '0');
    } else {
      t.value = named(name);
    }
    return t;
  }
  std::size_t end = 1;
  while (end < text.size() && name_char(text[end])) ++end;
  t.length = end;
  t.value = named(text.substr(1, end - 1));
  return t;
}

std::string_view request_uri(const TemplateContext& c) {
  std::string_view uri = c.request_uri;
  if (c.trim_trailing_slash && !uri.empty() && uri.back() == '/') uri.remove_suffix(1);
  return uri;
}

// Values nginx decoded from the request path.
bool decoded(const Token& t) {
  return !t.literal && (t.value == Value::kUri || t.value == Value::kCapture || t.value == Value::kPrefixRest ||
                        t.value == Value::kPrefixRestOrSlash);
}

// What percent-encoding leaves: anything that could end a URI, a header line or start its query.
bool needs_escape(unsigned char c, bool args) {
  return c <= 0x20 || c >= 0x7f || c == '"' || c == '#' || c == '%' || c == '?' || c == '<' || c == '>' ||
         c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' || (args && (c == '&' || c == '+'));
}

// $escaped_request_uri, as ingress-nginx's set_escape_uri: all but letters, digits and "-._~".
bool component_escape(unsigned char c) {
  return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~');
}

std::size_t escaped_length(std::string_view value, bool args) {
  std::size_t n = value.size();
  for (const unsigned char c : value) n += needs_escape(c, args) ? 2 : 0;
  return n;
}

std::size_t component_length(std::string_view value) {
  std::size_t n = value.size();
  for (const unsigned char c : value) n += component_escape(c) ? 2 : 0;
  return n;
}

// `component`: escape as $escaped_request_uri, else as needs_escape(c, args).
char* copy_escaped(std::string_view value, bool args, char* out, bool component = false) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : value) {
    if (component ? component_escape(c) : needs_escape(c, args)) {
      *out++ = '%';
      *out++ = kHex[c >> 4];
      *out++ = kHex[c & 15];
    } else {
      *out++ = static_cast<char>(c);
    }
  }
  return out;
}

std::string_view resolve(const Token& t, const TemplateContext& c) {
  switch (t.value) {
    case Value::kScheme: return c.scheme;
    case Value::kHost: return c.host;
    case Value::kHttpHost: return c.http_host;
    case Value::kRequestUri:
    case Value::kEscapedRequestUri: return request_uri(c);
    case Value::kUri: return c.uri;
    case Value::kArgs: return c.args;
    case Value::kIsArgs: return c.args.empty() ? std::string_view() : std::string_view("?");
    case Value::kPrefixRest:
    case Value::kPrefixRestOrSlash: {
      const std::string_view rest = c.uri.substr(std::min(c.prefix_length, c.uri.size()));
      return rest.empty() && t.value == Value::kPrefixRestOrSlash ? std::string_view("/") : rest;
    }
    case Value::kCapture: {
      if (t.group >= c.capture_count || c.captures == nullptr) return {};
      const std::uint32_t start = c.captures[2 * t.group];
      const std::uint32_t end = c.captures[2 * t.group + 1];
      if (start > end || end > c.subject.size()) return {};
      return c.subject.substr(start, end - start);
    }
    case Value::kUnknown: return {};
  }
  return {};
}

}  // namespace

std::string check_template(std::string_view text, bool captures) {
  while (!text.empty()) {
    const Token t = next_token(text);
    if (!t.literal) {
      const std::string_view reference = text.substr(0, t.length);
      if (t.value == Value::kUnknown) {
        return "\"" + std::string(reference) +
               "\" is not one of $scheme, $host, $http_host, $request_uri, $escaped_request_uri, $uri, $args, $query_string, $is_args, $prefix_rest, $prefix_rest_or_slash" +
               (captures ? ", $1..$9" : "");
      }
      if (t.value == Value::kCapture && !captures) {
        return "\"" + std::string(reference) + "\" refers to a regex group, but the path is not a regular expression";
      }
    }
    text.remove_prefix(t.length);
  }
  return {};
}

std::size_t template_length(std::string_view text, const TemplateContext& context) noexcept {
  std::size_t length = 0;
  bool args = false;
  while (!text.empty()) {
    const Token t = next_token(text);
    if (t.literal) {
      length += t.length;
      args = args || text.substr(0, t.length).find('?') != std::string_view::npos;
    } else if (t.value == Value::kEscapedRequestUri) {
      length += component_length(resolve(t, context));
    } else if (decoded(t) && (args || context.escape_path)) {
      length += escaped_length(resolve(t, context), args);
    } else {
      length += resolve(t, context).size();
    }
    text.remove_prefix(t.length);
  }
  return length;
}

char* expand_template(std::string_view text, const TemplateContext& context, char* out, std::size_t* query) noexcept {
  char* const start = out;
  bool args = false;
  while (!text.empty()) {
    const Token t = next_token(text);
    if (t.literal) {
      const std::string_view piece = text.substr(0, t.length);
      if (!args) {
        const std::size_t mark = piece.find('?');
        if (mark != std::string_view::npos) {
          args = true;
          if (query != nullptr) *query = static_cast<std::size_t>(out - start) + mark;
        }
      }
      std::memcpy(out, piece.data(), piece.size());
      out += piece.size();
    } else if (t.value == Value::kEscapedRequestUri) {
      out = copy_escaped(resolve(t, context), args, out, true);
    } else if (decoded(t) && (args || context.escape_path)) {
      out = copy_escaped(resolve(t, context), args, out);
    } else {
      const std::string_view piece = resolve(t, context);
      if (!piece.empty()) std::memcpy(out, piece.data(), piece.size());
      out += piece.size();
    }
    text.remove_prefix(t.length);
  }
  if (query != nullptr && !args) *query = static_cast<std::size_t>(out - start);
  return out;
}

}  // namespace kroute
