#include "annotations.h"

#include <algorithm>
#include <optional>
#include <cctype>
#include <initializer_list>

#include "host.h"
#include "policy/basic_auth.h"
#include "policy/cidr.h"
#include "policy/client_cert.h"
#include "policy/cors.h"
#include "policy/external_auth.h"
#include "policy/headers.h"
#include "policy/template.h"
#include "value_patterns.h"
#include "validate.h"

namespace kroute::agent {

namespace {

using A = IngressAnnotations;

// Go's strconv.ParseBool, as ingress-nginx reads its boolean annotations.
std::string boolean(std::string_view v, bool& out) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") {
    out = true;
  } else if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    out = false;
  } else {
    return "\"" + printable(v, 64) + "\" is not true or false";
  }
  return {};
}

// Printable ASCII without spaces: what URLs, paths and host names in these annotations are.
std::string plain(std::string_view v) {
  if (v.empty()) return "it is empty";
  for (const unsigned char c : v) {
    if (c <= 0x20 || c >= 0x7f) return "it contains spaces, control or non-ASCII characters";
  }
  return {};
}

// An absolute http(s) URL, as ingress-nginx's redirect annotations require, with the request values
// of template.h allowed (ingress-nginx passes the text to nginx's `return`, which expands variables).
std::string redirect_url(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  const std::size_t scheme_end = v.find("://");
  const std::string_view scheme = scheme_end == std::string_view::npos ? std::string_view() : v.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https" && scheme != "$scheme")
    return "\"" + printable(v, 128) + "\" is not an http:// or https:// URL";
  if (scheme_end + 3 >= v.size() || v[scheme_end + 3] == '/') return "\"" + printable(v, 128) + "\" names no host";
  if (std::string problem = check_template(v, true); !problem.empty()) return problem;
  out = std::string(v);
  return {};
}

std::string redirect_code(std::string_view v, std::uint16_t& out) {
  int code = 0;
  for (const char c : v) {
    if (c < '0' || c > '9' || code > 1000) return "\"" + printable(v, 16) + "\" is not a redirect code (300-308)";
    code = code * 10 + (c - '0');
  }
  if (v.empty() || code < 300 || code > 308) return "\"" + printable(v, 16) + "\" is not a redirect code (300-308)";
  out = static_cast<std::uint16_t>(code);
  return {};
}

std::string uri_path(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  if (v.front() != '/') return "\"" + printable(v, 128) + "\" does not start with '/'";
  if (v.find('$') != std::string_view::npos) return "\"" + printable(v, 128) + "\" contains '$'";
  out = std::string(v);
  return {};
}

std::string rewrite_target(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  if (v.front() != '/' && v.front() != '$') return "\"" + printable(v, 128) + "\" does not start with '/' or a group";
  if (std::string problem = check_template(v, true); !problem.empty()) return problem;
  out = std::string(v);
  return {};
}

std::string aliases(std::string_view v, std::vector<std::string>& out) {
  std::vector<std::string> names;
  while (!v.empty()) {
    const std::size_t comma = v.find(',');
    std::string_view name = v.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) {
      std::string normalized;
      if (std::string problem = check_rule_host(name, normalized); !problem.empty())
        return "alias \"" + printable(name, 64) + "\" " + problem;
      names.push_back(normalized);
    }
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
  }
  out = std::move(names);
  return {};
}

std::string header_value(std::string_view v, std::string& out) {
  if (v.empty()) return "it is empty";
  for (const unsigned char c : v) {
    if (c < 0x20 || c >= 0x7f) return "it contains control or non-ASCII characters";
  }
  out = std::string(v);
  return {};
}

// host[:port] as a Host header names a server.
std::string upstream_host(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  for (const char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
    if (!ok) return "\"" + printable(v, 128) + "\" is not a host name with an optional port";
  }
  out = std::string(v);
  return {};
}

// A proxy-* value read by `parse` (policy/proxy_setting.h), then checked against the setting's range.
template <typename Parse>
std::string proxy_value(std::string_view v, policy::ProxySetting setting, std::string_view syntax, Parse parse,
                        std::uint64_t& out) {
  const auto value = parse(v);
  if (!value) return "\"" + printable(v, 64) + "\" is not " + std::string(syntax);
  if (std::string problem = policy::proxy_setting_problem(static_cast<std::uint16_t>(setting), *value);
      !problem.empty())
    return problem;
  out = *value;
  return {};
}

// ingress-nginx's timeouts: whole seconds.
std::string seconds(std::string_view v, policy::ProxySetting setting, std::uint64_t& out) {
  return proxy_value(v, setting, "a number of seconds", policy::parse_seconds, out);
}

std::string count(std::string_view v, policy::ProxySetting setting, std::uint64_t& out) {
  return proxy_value(v, setting, "a whole number", policy::parse_count, out);
}

// nginx's sizes: 512, 8k, 1m (and 1g for proxy-body-size, an offset in nginx).
std::string size(std::string_view v, policy::ProxySetting setting, std::uint64_t& out) {
  const bool gigabytes = setting == policy::ProxySetting::kBodySize;
  return proxy_value(v, setting, gigabytes ? "a size (bytes, or with k, m or g)" : "a size (bytes, or with k or m)",
                     [gigabytes](std::string_view text) { return policy::parse_size(text, gigabytes); }, out);
}

// "on" or "off", as ingress-nginx's buffering annotations take them.
std::string on_off(std::string_view v, policy::ProxySetting setting, std::uint64_t& out) {
  return proxy_value(v, setting, "on or off", [](std::string_view text) -> std::optional<std::uint64_t> {
    if (text == "on") return 1;
    if (text == "off") return 0;
    return std::nullopt;
  }, out);
}

std::string next_upstream(std::string_view v, std::uint64_t& out) {
  return proxy_value(v, policy::ProxySetting::kNextUpstream,
                     "a list of error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, "
                     "http_404, http_429, non_idempotent, or off alone",
                     [](std::string_view text) -> std::optional<std::uint64_t> {
                       const auto bits = policy::parse_next_upstream(text);
                       if (!bits) return std::nullopt;
                       return *bits;
                     }, out);
}

using P = policy::ProxySetting;

// Comma-separated statuses 400-599 without spaces, as ingress-nginx's custom-http-errors pattern.
std::string status_list(std::string_view v, std::vector<std::uint16_t>& out) {
  std::vector<std::uint16_t> statuses;
  const std::string bad = "\"" + printable(v, 64) + "\" is not a comma-separated list of statuses 400-599";
  std::size_t start = 0;
  while (start <= v.size()) {
    const std::size_t comma = std::min(v.find(',', start), v.size());
    const std::string_view item = v.substr(start, comma - start);
    if (item.size() != 3 || (item[0] != '4' && item[0] != '5')) return bad;
    unsigned status = 0;
    for (const char c : item) {
      if (c < '0' || c > '9') return bad;
      status = status * 10 + static_cast<unsigned>(c - '0');
    }
    statuses.push_back(static_cast<std::uint16_t>(status));
    start = comma + 1;
  }
  out = std::move(statuses);
  return {};
}

std::string service_name(std::string_view v, std::string& out) {
  if (std::string problem = check_dns_label(v); !problem.empty()) return "\"" + printable(v, 64) + "\": " + problem;
  out = std::string(v);
  return {};
}

// The path (with query) of an http(s)://host[:port][path] URL whose host is a name or an IP address, or
// nullopt: what nginx's proxy module parses as the agent did.
std::optional<std::string_view> http_url_path(std::string_view v) {
  std::string_view rest = v;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  const std::size_t authority_end = std::min(rest.find_first_of("/$?"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  const std::string_view path = rest.substr(authority_end);
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (const char c : authority.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return std::nullopt;
    }
    authority.remove_prefix(close + 1);
  } else {
    const std::size_t colon = std::min(authority.find(':'), authority.size());
    const std::string_view host = authority.substr(0, colon);
    if (host.empty()) return std::nullopt;
    for (const char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return std::nullopt;
    }
    authority.remove_prefix(colon);
  }
  if (!authority.empty()) {
    if (authority.front() != ':' || authority.size() < 2 || authority.size() > 6) return std::nullopt;
    for (const char c : authority.substr(1)) {
      if (c < '0' || c > '9') return std::nullopt;
    }
  }
  return path;
}

// http(s)://host[:port][path]: a host name or IP address, a path of URL characters, and $request_uri as
// the only variable. Nothing of it becomes nginx configuration; the check keeps the URL one that nginx's
// proxy module parses as the agent did (ingress-nginx's mirror-target was an injection: CVE-2025-1098).
std::string mirror_url(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  std::optional<std::string_view> path = http_url_path(v);
  if (!path) return "\"" + printable(v, 128) + "\" is not an http(s)://host[:port][/path] URL";
  while (!path->empty()) {
    if (path->starts_with("$request_uri")) {
      path->remove_prefix(12);
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(path->front());
    if (!std::isalnum(c) && std::string_view("/-._~%?=&+:@,").find(static_cast<char>(c)) == std::string_view::npos)
      return "\"" + printable(v, 128) + "\" has a character other than URL letters, or a variable other than $request_uri";
    path->remove_prefix(1);
  }
  // "$request_uri_x" is another name to the module's template: refused here, not by the builder.
  if (!check_template(v, false).empty()) return "\"" + printable(v, 128) + "\" has a variable other than $request_uri";
  out = std::string(v);
  return {};
}

// auth-url: http(s)://host[:port][path] whose host is literal (an IP address or a name the compiler
// resolves), and whose path may use template.h's request values, as ingress-nginx's variables.
std::string auth_url(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  const std::optional<std::string_view> path = http_url_path(v);
  if (!path) return "\"" + printable(v, 128) + "\" is not an http(s)://host[:port][/path] URL with a literal host";
  for (const unsigned char c : *path) {
    if (!std::isalnum(c) && std::string_view("/-._~%?=&+:@,!*;${}").find(static_cast<char>(c)) == std::string_view::npos)
      return "\"" + printable(v, 128) + "\" has a character other than URL letters";
  }
  if (std::string problem = check_template(v, false); !problem.empty()) return problem;
  out = std::string(v);
  return {};
}

// A non-negative decimal integer below 2^31, as ingress-nginx's integer annotations.
std::string count(std::string_view v, std::uint64_t& out) {
  std::uint64_t n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9' || n > 0x7fffffff) return "\"" + printable(v, 32) + "\" is not a non-negative integer";
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v.empty() || n > 0x7fffffff) return "\"" + printable(v, 32) + "\" is not a non-negative integer";
  out = n;
  return {};
}

std::string count32(std::string_view v, std::uint32_t& out) {
  std::uint64_t n = 0;
  if (std::string problem = count(v, n); !problem.empty()) return problem;
  out = static_cast<std::uint32_t>(n);
  return {};
}

// A header or cookie name: letters, digits, '-', '_', '.'.
std::string token(std::string_view v, std::string& out) {
  if (v.empty() || v.size() > 256) return "\"" + printable(v, 64) + "\" is not a header or cookie name";
  for (const char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return "\"" + printable(v, 64) + "\" is not a header or cookie name";
  }
  out = std::string(v);
  return {};
}

// One of `choices`, as written.
std::string one_of(std::string_view v, std::initializer_list<std::string_view> choices, std::string& out) {
  for (const std::string_view c : choices) {
    if (v == c) {
      out = std::string(v);
      return {};
    }
  }
  std::string list;
  for (const std::string_view c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
  return "\"" + printable(v, 64) + "\" is not one of " + list;
}

// A cookie attribute value (Path, Domain): printable, no ';' or ','.
std::string cookie_attribute(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  if (v.find_first_of(";,") != std::string_view::npos) return "\"" + printable(v, 128) + "\" contains ';' or ','";
  out = std::string(v);
  return {};
}

// A regex of request values, compiled as the module will.
std::string value_pattern(std::string_view v, std::string& out) {
  if (v.empty()) return "it is empty";
  if (std::string problem = check_value_pattern(v); !problem.empty()) return problem;
  if (std::string problem = policy::check_header_value(v); !problem.empty()) return "it " + problem;
  out = std::string(v);
  return {};
}

// upstream-hash-by: nginx variables and text, e.g. "$request_uri" or "$http_x_user$cookie_session".
std::string hash_key(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  for (const char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '$' ||
                    c == '_' || c == '-' || c == '.' || c == ':' || c == '/';
    if (!ok) return "\"" + printable(v, 128) + "\" is not nginx variables and text";
  }
  out = std::string(v);
  return {};
}

// A value in a message: in quotes, printable, at most `max` characters.
std::string quoted(std::string_view v, std::size_t max) {
  std::string out(1, '"');
  out += printable(v, max);
  out += '"';
  return out;
}

// backend-protocol: ingress-nginx's options, any case, spaces around ignored.
std::string backend_protocol(std::string_view v, std::uint16_t& out) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  std::string upper(v);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  static constexpr std::pair<std::string_view, policy::UpstreamProtocol> kNames[] = {
      {"HTTP", policy::kHttp},   {"HTTPS", policy::kHttps},        {"GRPC", policy::kGrpc},
      {"GRPCS", policy::kGrpcs}, {"AUTO_HTTP", policy::kAutoHttp},
  };
  for (const auto& [name, protocol] : kNames) {
    if (upper == name) {
      out = protocol;
      return {};
    }
  }
  if (upper == "FCGI") return "FCGI is not supported yet (kroute has no FastCGI parameters); HTTP is used";
  return quoted(v, 32) + " is not HTTP, HTTPS, GRPC, GRPCS or AUTO_HTTP";
}

std::string on_off(std::string_view v, bool& out) {
  if (v != "on" && v != "off") return quoted(v, 32) + " is not on or off";
  out = v == "on";
  return {};
}

// "namespace/name" of a Secret (ingress-nginx's form; the compiler checks the namespace).
std::string secret_reference(std::string_view v, std::string& out) {
  const std::size_t slash = v.find('/');
  if (slash == std::string_view::npos || v.find('/', slash + 1) != std::string_view::npos)
    return quoted(v, 128) + " is not namespace/name";
  if (std::string problem = check_dns_label(v.substr(0, slash)); !problem.empty()) return problem.insert(0, "namespace ");
  if (std::string problem = check_dns_subdomain(v.substr(slash + 1)); !problem.empty()) return problem.insert(0, "name ");
  out = std::string(v);
  return {};
}

// A DNS name (proxy-ssl-name): what SNI carries and the backend's certificate must name.
std::string tls_name(std::string_view v, std::string& out) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  std::string normalized;
  if (std::string problem = check_rule_host(v, normalized); !problem.empty() || normalized.starts_with("*."))
    return quoted(v, 128) + " is not a host name";
  out = std::move(normalized);
  return {};
}

// proxy-ssl-protocols: TLSv1.2 and/or TLSv1.3, separated by spaces.
std::string tls_versions(std::string_view v, std::uint8_t& low, std::uint8_t& high) {
  std::uint8_t lo = 0, hi = 0;
  while (!v.empty()) {
    const std::size_t space = v.find(' ');
    const std::string_view word = v.substr(0, space);
    v = space == std::string_view::npos ? std::string_view() : v.substr(space + 1);
    if (word.empty()) continue;
    std::uint8_t version = 0;
    if (word == "TLSv1.2") version = 3;
    else if (word == "TLSv1.3") version = 4;
    else return quoted(word, 32) + " is not TLSv1.2 or TLSv1.3";
    lo = lo == 0 ? version : std::min(lo, version);
    hi = std::max(hi, version);
  }
  if (lo == 0) return "it names no TLS version";
  low = lo;
  high = hi;
  return {};
}

// proxy-ssl-ciphers: an OpenSSL cipher list in ingress-nginx's characters; "DEFAULT" is OpenSSL's own.
std::string cipher_list(std::string_view v, std::string& out) {
  if (v.empty() || v.size() > policy::kMaxCipherList) return "it is empty or longer than 1024 characters";
  for (const char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
                    c == ':' || c == '_' || c == '-' || c == '!';
    if (!ok) return quoted(v, 64) + " is not an OpenSSL cipher list";
  }
  out = v == "DEFAULT" ? std::string() : std::string(v);
  return {};
}

std::string small_count(std::string_view v, std::uint8_t& out) {
  int n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9' || n > 100) return quoted(v, 16) + " is not a number from 1 to 100";
    n = n * 10 + (c - '0');
  }
  if (v.empty() || n < 1 || n > 100) return quoted(v, 16) + " is not a number from 1 to 100";
  out = static_cast<std::uint8_t>(n);
  return {};
}

// *-source-range: comma-separated CIDRs or addresses, IPv4 and IPv6, blanks around each ignored (Go's
// strings.TrimSpace, as ingress-nginx's net.ParseIPNets); host bits are cleared. An empty value or an
// empty entry ("10.0.0.0/8,") is refused, as ingress-nginx's validation refuses it (the location is
// denied there too). Packed for the module (policy/cidr.h).
std::string source_ranges(std::string_view v, std::string& out) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  std::string packed;
  std::size_t count = 0;
  while (true) {
    const std::size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    while (!item.empty() && blank(item.front())) item.remove_prefix(1);
    while (!item.empty() && blank(item.back())) item.remove_suffix(1);
    if (item.empty()) return count == 0 && comma == std::string_view::npos ? "it is empty" : "it has an empty entry";
    for (const char c : item) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '.' && c != ':' && c != '/')
        return quoted(item, 64) + " is not an IP address or CIDR";
    }
    if (++count > policy::kMaxCidrs) return "it has more than " + std::to_string(policy::kMaxCidrs) + " entries";
    if (std::string problem = policy::parse_cidr_list(item, packed); !problem.empty()) return problem;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  out = std::move(packed);
  return {};
}

// auth-signin: an absolute http(s) URL (template.h's values allowed, as ingress-nginx's variables; the
// usual $escaped_request_uri too).
std::string signin_url(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  if (!v.starts_with("http://") && !v.starts_with("https://") && !v.starts_with("$scheme://"))
    return quoted(v, 128) + " is not an http:// or https:// URL";
  if (std::string problem = check_template(v, false); !problem.empty()) return problem;
  out = std::string(v);
  return {};
}

// auth-secret: a Secret's name, or namespace/name (ingress-nginx splits it as a cache key; the
// compiler checks the namespace).
std::string auth_secret_reference(std::string_view v, std::string& out) {
  const std::size_t slash = v.find('/');
  if (slash != std::string_view::npos) {
    if (v.find('/', slash + 1) != std::string_view::npos) return quoted(v, 128) + " is not name or namespace/name";
    if (std::string problem = check_dns_label(v.substr(0, slash)); !problem.empty()) return problem.insert(0, "namespace ");
  }
  const std::string_view name = slash == std::string_view::npos ? v : v.substr(slash + 1);
  if (std::string problem = check_dns_subdomain(name); !problem.empty()) return problem.insert(0, "name ");
  out = std::string(v);
  return {};
}

// auth-tls-error-page: an absolute http(s) URL sent as it is (no variables: nginx's error_page would
// expand them, the module does not).
std::string client_error_page(std::string_view v, std::string& out) {
  if (std::string problem = plain(v); !problem.empty()) return problem;
  if (!v.starts_with("http://") && !v.starts_with("https://"))
    return quoted(v, 128) + " is not an http:// or https:// URL";
  if (v.find('$') != std::string_view::npos) return quoted(v, 128) + " contains '$' (no variables are expanded)";
  out = std::string(v);
  return {};
}

// auth-response-headers: header names, comma-separated (spaces around them allowed), as ingress-nginx's
// ^[a-zA-Z\d\-_]+$; kept as "A,B".
std::string header_names(std::string_view v, std::string& out) {
  std::string names;
  while (!v.empty()) {
    const std::size_t comma = std::min(v.find(','), v.size());
    std::string_view name = v.substr(0, comma);
    v.remove_prefix(std::min(comma + 1, v.size()));
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) continue;
    for (const char c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
        return quoted(name, 64) + " is not a header name";
    }
    if (!names.empty()) names += ',';
    names += name;
  }
  out = std::move(names);
  return {};
}

// cors-allow-origin: ingress-nginx's list (comma-separated; "*" anywhere makes it any origin; each
// other entry must match its corsOriginRegex, and an entry that does not is dropped).
std::string cors_origins(std::string_view v, std::string& out) {
  std::string kept;
  std::string dropped;
  while (true) {
    const std::size_t comma = v.find(',');
    std::string_view entry = v.substr(0, comma);
    while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) entry.remove_prefix(1);
    while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
    if (entry == "*") {
      out = "*";
      return {};
    }
    if (!entry.empty()) {
      if (policy::cors_origin_valid(entry)) {
        if (!kept.empty()) kept += ' ';
        kept.append(entry);
      } else {
        if (!dropped.empty()) dropped += ", ";
        dropped += "\"" + printable(entry, 64) + "\"";
      }
    }
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  out = kept;
  if (!dropped.empty()) {
    return "origin " + dropped + " is not scheme://host[:port], scheme://*.host[:port], null or *; " +
           (kept.empty() ? std::string("no origin gets CORS headers") : "the other origins stay");
  }
  return {};
}

// A CORS value that cannot be read turns the Ingress's CORS off (IngressAnnotations::cors_invalid).
std::string cors_list(std::string_view v, bool (*valid)(std::string_view), std::string& out, A& a) {
  if (!valid(v)) {
    a.cors_invalid = true;
    return "\"" + printable(v, 64) + "\" is not a valid list; the Ingress gets no CORS headers";
  }
  out = std::string(v);
  return {};
}

// auth-tls-match-cn: a regex on the subject DN; ingress-nginx ignores one without "CN=", kroute refuses it.
std::string match_cn(std::string_view v, std::string& out) {
  if (v.find("CN=") == std::string_view::npos) return quoted(v, 128) + " does not contain CN=";
  return value_pattern(v, out);
}

constexpr std::string_view kSnippet =
    "nginx configuration text from the cluster: kroute never writes configuration from cluster data "
    "(the CVE-2025-1974 family)";

#define SUPPORTED(name, note, ...) \
  {name, Support::kSupported, note, [](std::string_view v, A& a) -> std::string __VA_ARGS__}
// An access annotation (AnnotationSpec::access): it fails closed.
#define ACCESS(name, note, ...) \
  {name, Support::kSupported, note, [](std::string_view v, A& a) -> std::string __VA_ARGS__, false, true}
#define PLANNED(name, issue) {name, Support::kPlanned, issue}
#define NOT_YET(name, why) {name, Support::kNotYet, why}
#define NEVER(name, why) {name, Support::kNever, why}
#define SNIPPET(name) {name, Support::kNever, kSnippet, nullptr, true}

// Every ingress-nginx annotation (its docs/user-guide/nginx-configuration/annotations.md), in its order.
const AnnotationSpec kSpecs[] = {
    SUPPORTED("app-root", "a request for / of the host gets a 302 to this path (host-wide)",
              { return uri_path(v, a.app_root); }),
    SUPPORTED("affinity",
              "cookie: session affinity; the cookie names the endpoint (persistent) or a session key "
              "(balanced), never worker state, so it holds across workers and replicas",
              { std::string v2; auto p = one_of(v, {"cookie"}, v2); if (p.empty()) a.affinity_cookie = true; return p; }),
    SUPPORTED("affinity-mode", "balanced (default: sessions spread again when endpoints change) or persistent",
              { std::string m; auto p = one_of(v, {"balanced", "persistent"}, m); if (p.empty()) a.affinity_persistent = m == "persistent"; return p; }),
    SUPPORTED("affinity-canary-behavior",
              "sticky (default: a session stays with the primary or the canary that served it) or legacy",
              { std::string m; auto p = one_of(v, {"sticky", "legacy"}, m); if (p.empty()) a.affinity_canary_legacy = m == "legacy"; return p; }),
    ACCESS("allowlist-source-range",
           "comma-separated CIDRs or addresses, IPv4 and IPv6: other clients get 403 (the client address "
           "follows the chart's real-IP settings); a bad entry or an empty value: the Ingress's paths answer 503",
           { return source_ranges(v, a.allowlist_source_range); }),
    ACCESS("auth-realm", "the realm of the 401's WWW-Authenticate: Basic challenge (letters, digits, spaces, -._~/:)",
           {
             if (std::string problem = policy::check_realm(v); !problem.empty()) return "the realm " + problem;
             a.auth_realm = std::string(v);
             return {};
           }),
    ACCESS("auth-secret",
           "the Secret (name or namespace/name, the Ingress's namespace only) holding the users; a change to it is "
           "live at once; missing, without users or unusable: the paths answer 503",
           { return auth_secret_reference(v, a.auth_secret); }),
    ACCESS("auth-secret-type",
           "auth-file (default: the `auth` key holds htpasswd lines) or auth-map (each key a user, its value the hash)",
           {
             if (v != "auth-file" && v != "auth-map") return "\"" + printable(v, 32) + "\" is not auth-file or auth-map";
             a.auth_secret_map = v == "auth-map";
             return {};
           }),
    ACCESS("auth-type",
           "basic: HTTP basic authentication against auth-secret (bcrypt, apr1, $1$/$5$/$6$ crypt, {SHA}, {SSHA}, "
           "{PLAIN}); digest is refused (the paths answer 503)",
           {
             if (v == "basic") {
               a.auth_basic = true;
               return {};
             }
             if (v == "digest") return "digest authentication is not supported by kroute";
             return "\"" + printable(v, 32) + "\" is not basic";
           }),
    ACCESS("auth-tls-secret",
           "namespace/name of a Secret (any type) in the Ingress's namespace whose ca.crt is the CA bundle "
           "(and ca.crl, if any, its CRLs): clients of the whole host (every Ingress's paths) are asked for a "
           "certificate in the handshake, chosen by SNI; missing Secret, no ca.crt or bad PEM: the Ingress's "
           "paths answer 503 (docs/access.md)",
           { return secret_reference(v, a.auth_tls_secret); }),
    ACCESS("auth-tls-verify-depth", "1-100 (default 1; 0 reads as 1, as ingress-nginx)",
           { if (v == "0") { a.auth_tls_verify_depth = 1; return {}; } return small_count(v, a.auth_tls_verify_depth); }),
    ACCESS("auth-tls-verify-client",
           "on (default), off, optional, optional_no_ca; no or a bad certificate: 400 (on), a bad one: 400 "
           "(optional); another value answers 503 (ingress-nginx would read it as on)",
           { std::string m; auto p = one_of(v, {"off", "on", "optional", "optional_no_ca"}, m);
             if (p.empty()) a.auth_tls_verify_client = static_cast<std::uint8_t>(m == "off" ? policy::kVerifyOff : m == "on" ? policy::kVerifyOn : m == "optional" ? policy::kVerifyOptional : policy::kVerifyOptionalNoCa);
             return p; }),
    ACCESS("auth-tls-error-page", "an http(s) URL: a client refused for its certificate gets a 302 there instead of the 400",
           { return client_error_page(v, a.auth_tls_error_page); }),
    ACCESS("auth-tls-pass-certificate-to-upstream",
           "true: the URL-escaped PEM goes upstream in ssl-client-cert (ssl-client-verify, -subject-dn and "
           "-issuer-dn always do; a client's own headers of these names are dropped)",
           { return boolean(v, a.auth_tls_pass_certificate); }),
    ACCESS("auth-tls-match-cn",
           "a PCRE regex on the subject DN (\"CN=...\", it must contain CN=) with the work bound of regex paths; "
           "no match: 403; a regex that does not compile answers 503",
           { return match_cn(v, a.auth_tls_match_cn); }),
    ACCESS("auth-url",
           "each request first goes, without its body, to this http(s) URL (an IP address or a Service's "
           "<name>.<namespace>.svc name; the path may use $host, $request_uri and the like): 2xx passes, 401/403 "
           "go to the client, anything else 500 (docs/access.md)",
           { return auth_url(v, a.auth_url); }),
    ACCESS("auth-cache-key",
           "auth answers are cached by this key ($remote_user, $http_<name>, $cookie_<name>, $arg_<name>, $host, "
           "$request_uri and the like) in memory shared by nginx's workers",
           { if (std::string p = policy::check_auth_cache_key(v); !p.empty()) return p; a.auth_cache_key = std::string(v); return {}; }),
    ACCESS("auth-cache-duration",
           "statuses and how long they are cached, as \"200 202 401 5m\" (the default), entries separated by commas",
           { auto d = policy::parse_auth_cache_durations(v); if (!d) return quoted(v, 64) + " is not a list of [statuses] durations"; a.auth_cache_duration = *d; return {}; }),
    SUPPORTED("auth-keepalive",
              "read and checked, no effect: each auth subrequest opens its own connection (nginx's auth_request "
              "never kept them alive either, ingress-nginx used Lua)",
              { (void) a; std::uint64_t n = 0; return count(v, n); }),
    SUPPORTED("auth-keepalive-share-vars", "read and checked, no effect (see auth-keepalive)",
              { (void) a; bool b = false; return boolean(v, b); }),
    SUPPORTED("auth-keepalive-requests", "read and checked, no effect (see auth-keepalive)",
              { (void) a; std::uint64_t n = 0; return count(v, n); }),
    SUPPORTED("auth-keepalive-timeout", "read and checked, no effect (see auth-keepalive)",
              { (void) a; std::uint64_t n = 0; return count(v, n); }),
    ACCESS("auth-proxy-set-headers",
           "not supported: kroute does not read ConfigMaps for Ingresses; an Ingress with it fails closed (503), "
           "since its auth service may rely on the headers",
           { (void) a; return "\"" + printable(v, 64) + "\": headers for the auth request from a ConfigMap are not supported"; }),
    SNIPPET("auth-snippet"),
    NOT_YET("enable-global-auth", "kroute has no global-auth-url, so there is nothing to turn off"),
    ACCESS("auth-method", "the auth subrequest's method (GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, "
           "TRACE; default GET); with it, X-Original-URI and X-Scheme are sent too",
           { auto m = policy::auth_method(v); if (!m) return quoted(v, 32) + " is not an HTTP method ingress-nginx accepts"; a.auth_method = *m; return {}; }),
    ACCESS("auth-signin",
           "a 401 of the auth service becomes a 302 to this URL, with rd=<the request's URL> unless it has that "
           "parameter (template values and $escaped_request_uri allowed)",
           { return signin_url(v, a.auth_signin); }),
    ACCESS("auth-signin-redirect-param", "the name of auth-signin's redirect parameter (default rd)",
           { return token(v, a.auth_signin_redirect_param); }),
    ACCESS("auth-response-headers",
           "these headers of a 2xx auth answer replace the client's of the same name on the upstream request",
           { return header_names(v, a.auth_response_headers); }),
    ACCESS("auth-request-redirect", "the X-Auth-Request-Redirect header sent to the auth service (default "
           "the request's URI; template values allowed)",
           { if (std::string p = header_value(v, a.auth_request_redirect); !p.empty()) return p; return check_template(v, false); }),
    ACCESS("auth-always-set-cookie",
           "the auth answer's Set-Cookie reaches the client with every status (default: only on 2xx and 3xx "
           "answers, as nginx's add_header)",
           { return boolean(v, a.auth_always_set_cookie); }),
    SUPPORTED("backend-protocol",
              "HTTP, HTTPS, GRPC, GRPCS or AUTO_HTTP (HTTPS when the client used TLS); FCGI is not supported yet",
              { return backend_protocol(v, a.backend_protocol); }),
    SUPPORTED("canary",
              "the Ingress is a canary of the Ingress with the same host and path: only its backend (and "
              "affinity, hashing) is used; one per host+path",
              { return boolean(v, a.canary); }),
    SUPPORTED("canary-by-header", "the header's value always / never (or canary-by-header-value) decides first",
              { return token(v, a.canary_by_header); }),
    SUPPORTED("canary-by-header-value", "this exact value of canary-by-header sends to the canary",
              { return header_value(v, a.canary_by_header_value); }),
    SUPPORTED("canary-by-header-pattern",
              "a PCRE regex matched anywhere in canary-by-header's value (when no -value is set)",
              { return value_pattern(v, a.canary_by_header_pattern); }),
    SUPPORTED("canary-by-cookie", "the cookie's value always / never decides after the header",
              { return token(v, a.canary_by_cookie); }),
    SUPPORTED("canary-weight", "what is left goes to the canary with weight/total (a per-worker random draw)",
              { return count32(v, a.canary_weight); }),
    SUPPORTED("canary-weight-total", "default 100",
              { std::uint32_t t = 0; auto p = count32(v, t); if (p.empty() && t == 0) p = "the total must be above 0"; if (p.empty()) a.canary_weight_total = t; return p; }),
    SUPPORTED("client-body-buffer-size", "nginx size (8k, 1m); bodies larger than this go to a temporary file",
              { return size(v, P::kBodyBufferSize, a.client_body_buffer_size); }),
    SNIPPET("configuration-snippet"),
    SUPPORTED("custom-http-errors",
              "these statuses (400-599, comma-separated) of the rule's answers are replaced by the answer of "
              "default-backend (else the table's default backend) to the request with X-Code etc.; the "
              "client keeps the status",
              { return status_list(v, a.custom_http_errors); }),
    SUPPORTED("disable-proxy-intercept-errors",
              "custom-http-errors replaces only kroute's own 503, not the Service's answers",
              { return boolean(v, a.disable_proxy_intercept_errors); }),
    NOT_YET("custom-headers",
            "needs the agent to watch ConfigMaps and an operator's list of allowed header names (ingress-nginx's "
            "global-allowed-response-headers); not scheduled; HSTS is a chart setting"),
    SUPPORTED("default-backend",
              "a Service of the Ingress's namespace (its first port) that answers when the rule's Service has "
              "no ready endpoints, and the custom-http-errors",
              { return service_name(v, a.default_backend); }),
    ACCESS("denylist-source-range",
           "comma-separated CIDRs or addresses: these clients get 403, checked before the allowlist; a bad "
           "entry or an empty value: the Ingress's paths answer 503",
           { return source_ranges(v, a.denylist_source_range); }),
    SUPPORTED("enable-cors",
              "CORS headers for allowed origins; preflight OPTIONS answered 204 by nginx (invalid value: off)",
              { return boolean(v, a.enable_cors); }),
    SUPPORTED("cors-allow-origin",
              "comma list of scheme://host[:port] (a * label for one subdomain level), null, or * (default); "
              "matched whole; invalid entries are dropped, never widened to *",
              { return cors_origins(v, a.cors_origins); }),
    SUPPORTED("cors-allow-methods", "default GET, PUT, POST, DELETE, PATCH, OPTIONS (invalid value: no CORS)",
              { return cors_list(v, policy::cors_methods_valid, a.cors_methods, a); }),
    SUPPORTED("cors-allow-headers", "default ingress-nginx's list (DNT, ..., Authorization) (invalid value: no CORS)",
              { return cors_list(v, policy::cors_headers_valid, a.cors_headers, a); }),
    SUPPORTED("cors-expose-headers", "default none (invalid value: no CORS)",
              { return cors_list(v, policy::cors_expose_headers_valid, a.cors_expose_headers, a); }),
    SUPPORTED("cors-allow-credentials", "default true (invalid value: no CORS)",
              {
                if (std::string problem = boolean(v, a.cors_credentials); !problem.empty()) {
                  a.cors_invalid = true;
                  return problem + "; the Ingress gets no CORS headers";
                }
                return {};
              }),
    SUPPORTED("cors-max-age", "seconds (default 1728000; invalid value: the default)",
              { return count(v, a.cors_max_age); }),
    SUPPORTED("force-ssl-redirect", "plain HTTP gets a 308 to https:// even without a certificate for the host",
              { return boolean(v, a.force_ssl_redirect); }),
    SUPPORTED("from-to-www-redirect",
              "www.<host> gets a 308 to <host> (or the reverse), unless an Ingress routes that name itself",
              { return boolean(v, a.from_to_www_redirect); }),
    NEVER("http2-push-preload", "HTTP/2 server push was removed from nginx (1.25.1) and from browsers"),
    ACCESS("limit-connections",
           "requests in progress per client address (0: none); one more answers 503 (chart: limitConnStatusCode); "
           "counted across the workers of an nginx, per Ingress",
           { return count(v, a.limit_connections); }),
    ACCESS("limit-rps",
           "requests per second per client address, burst limit-rps*limit-burst-multiplier without delay; the "
           "excess answers 503 (chart: limitReqStatusCode); counted across workers, per Ingress",
           { return count(v, a.limit_rps); }),
    ACCESS("limit-rpm", "as limit-rps, per minute; both may be set and both apply",
           { return count(v, a.limit_rpm); }),
    ACCESS("limit-burst-multiplier", "the burst of limit-rps / limit-rpm in multiples of the limit (default 5)",
           { return count(v, a.limit_burst_multiplier); }),
    ACCESS("limit-rate", "the response's bytes per second to the client, in KB (1024 bytes); 0: none; as in ingress-nginx, only with "
           "proxy-buffering on (nginx does not limit unbuffered responses)",
           { return count(v, a.limit_rate_kb); }),
    ACCESS("limit-rate-after", "KB of the response sent at full speed before limit-rate applies",
           { return count(v, a.limit_rate_after_kb); }),
    ACCESS("limit-whitelist", "alias of limit-allowlist (which wins when both are set)",
           { a.limit_exempt.clear(); auto p = policy::parse_cidr_list(v, a.limit_exempt); if (!p.empty()) a.limit_exempt.clear(); return p; }),
    ACCESS("limit-allowlist",
           "client addresses (CIDRs, IPv4 and IPv6, comma-separated) that limit-rps, limit-rpm and "
           "limit-connections do not count",
           { a.limit_exempt.clear(); auto p = policy::parse_cidr_list(v, a.limit_exempt); if (!p.empty()) a.limit_exempt.clear(); return p; }),
    NOT_YET("global-rate-limit", "needs a memcached deployment; not scheduled"),
    NOT_YET("global-rate-limit-window", "needs a memcached deployment; not scheduled"),
    NOT_YET("global-rate-limit-key", "needs a memcached deployment; not scheduled"),
    NOT_YET("global-rate-limit-ignored-cidrs", "needs a memcached deployment; not scheduled"),
    SUPPORTED("permanent-redirect",
              "the rule answers 301 (or permanent-redirect-code) with this URL; $request_uri and the other "
              "values of docs/route-table.md are expanded per request",
              { return redirect_url(v, a.permanent_redirect); }),
    SUPPORTED("permanent-redirect-code", "300-308; anything else keeps 301",
              { return redirect_code(v, a.permanent_redirect_code); }),
    SUPPORTED("temporal-redirect", "as permanent-redirect with 302 (or temporal-redirect-code); wins over it",
              { return redirect_url(v, a.temporal_redirect); }),
    SUPPORTED("temporal-redirect-code", "300-308; anything else keeps 302",
              { return redirect_code(v, a.temporal_redirect_code); }),
    SUPPORTED("preserve-trailing-slash", "the https:// redirect keeps a trailing slash",
              { return boolean(v, a.preserve_trailing_slash); }),
    SUPPORTED("proxy-body-size",
              "nginx size (1m, 512k, 1g; 0: no limit; default 1m): a larger body gets 413, with Content-Length "
              "or chunked, HTTP/1.1 and HTTP/2",
              { return size(v, P::kBodySize, a.proxy_body_size); }),
    NOT_YET("proxy-cookie-domain", "not scheduled"),
    NOT_YET("proxy-cookie-path", "not scheduled"),
    SUPPORTED("proxy-connect-timeout", "seconds (default 5)",
              { return seconds(v, P::kConnectTimeout, a.proxy_connect_timeout_ms); }),
    SUPPORTED("proxy-send-timeout", "seconds (default 60)",
              { return seconds(v, P::kSendTimeout, a.proxy_send_timeout_ms); }),
    SUPPORTED("proxy-read-timeout", "seconds (default 60); a backend silent for longer gets the request 504",
              { return seconds(v, P::kReadTimeout, a.proxy_read_timeout_ms); }),
    SUPPORTED("proxy-next-upstream",
              "when to try another endpoint: error timeout invalid_header http_500 http_502 http_503 http_504 "
              "http_403 http_404 http_429 non_idempotent, or off (default \"error timeout\")",
              { return next_upstream(v, a.proxy_next_upstream); }),
    SUPPORTED("proxy-next-upstream-timeout", "seconds (default 0: no limit) for trying further endpoints",
              { return seconds(v, P::kNextUpstreamTimeout, a.proxy_next_upstream_timeout_ms); }),
    SUPPORTED("proxy-next-upstream-tries", "endpoints tried at most (default 3; 0: no limit)",
              { return count(v, P::kNextUpstreamTries, a.proxy_next_upstream_tries); }),
    SUPPORTED("proxy-request-buffering", "on (default) or off: the body is sent to the backend as it arrives",
              { return on_off(v, P::kRequestBuffering, a.proxy_request_buffering); }),
    NOT_YET("proxy-redirect-from", "not scheduled"),
    NOT_YET("proxy-redirect-to", "not scheduled"),
    SUPPORTED("proxy-http-version", "1.0 or 1.1 (default) to HTTP and HTTPS backends",
              {
                if (v != "1.0" && v != "1.1") return quoted(v, 16) + " is not 1.0 or 1.1";
                a.proxy_http_10 = v == "1.0";
                return {};
              }),
    SUPPORTED("proxy-ssl-secret",
              "namespace/name of a kubernetes.io/tls Secret in the Ingress's namespace: ca.crt checks HTTPS and "
              "GRPCS backends, tls.crt/tls.key is the client certificate; missing or unusable: the rule answers 503",
              { return secret_reference(v, a.proxy_ssl_secret); }),
    SUPPORTED("proxy-ssl-ciphers", "OpenSSL cipher list for TLS 1.2 to the backend (with proxy-ssl-secret)",
              { return cipher_list(v, a.proxy_ssl_ciphers); }),
    SUPPORTED("proxy-ssl-name",
              "the name the backend's certificate must carry and SNI sends (default: the Service's name.namespace.svc)",
              { return tls_name(v, a.proxy_ssl_name); }),
    SUPPORTED("proxy-ssl-protocols", "TLSv1.2 and/or TLSv1.3 to the backend (default TLSv1.2, with proxy-ssl-secret)",
              { return tls_versions(v, a.proxy_ssl_min_version, a.proxy_ssl_max_version); }),
    SUPPORTED("proxy-ssl-verify",
              "on: the backend's certificate must chain to proxy-ssl-secret's ca.crt and carry proxy-ssl-name; "
              "on without a usable Secret: the rule answers 503",
              { return on_off(v, a.proxy_ssl_verify); }),
    SUPPORTED("proxy-ssl-verify-depth", "1-100 (default 1)", { return small_count(v, a.proxy_ssl_verify_depth); }),
    SUPPORTED("proxy-ssl-server-name", "on: SNI carries proxy-ssl-name", { return on_off(v, a.proxy_ssl_server_name); }),
    NEVER("enable-rewrite-log", "kroute's rewrites are not nginx rewrite directives; `kroute-table lookup` "
                                "shows the upstream URI of a request"),
    SUPPORTED("rewrite-target",
              "the upstream URI is this target with $1..$9 from the regex path; the query string is kept; "
              "makes every path of the host a regex",
              { return rewrite_target(v, a.rewrite_target); }),
    SUPPORTED("satisfy",
              "any: a request passes when one of the rule's access checks does (allow/deny lists, basic auth, "
              "external auth), else all must; another value keeps all, the stricter (as ingress-nginx)",
              { std::string m; auto p = one_of(v, {"any", "all"}, m); if (p.empty()) a.satisfy_any = m == "any"; return p; }),
    SUPPORTED("server-alias", "more host names (comma-separated) with the same rules, unless an Ingress routes them",
              { return aliases(v, a.server_alias); }),
    SNIPPET("server-snippet"),
    SUPPORTED("service-upstream", "the rule's requests go to the Service's ClusterIP, not its endpoints",
              { return boolean(v, a.service_upstream); }),
    SUPPORTED("session-cookie-name", "default INGRESSCOOKIE", { return token(v, a.session_cookie_name); }),
    SUPPORTED("session-cookie-path", "default the rule's path (/ for regex paths)",
              { return cookie_attribute(v, a.session_cookie_path); }),
    SUPPORTED("session-cookie-domain", "the cookie's Domain", { return cookie_attribute(v, a.session_cookie_domain); }),
    SUPPORTED("session-cookie-expires", "seconds: Expires is now plus this", { return count(v, a.session_cookie_expires); }),
    SUPPORTED("session-cookie-max-age", "seconds: the cookie's Max-Age",
              { std::uint64_t n = 0; auto p = count(v, n); if (p.empty()) a.session_cookie_max_age = std::to_string(n); return p; }),
    SUPPORTED("session-cookie-secure", "Secure also over plain HTTP (always over HTTPS)",
              { return boolean(v, a.session_cookie_secure); }),
    SUPPORTED("session-cookie-change-on-failure",
              "a retry on another endpoint moves the session there (default: the cookie keeps the first)",
              { return boolean(v, a.session_cookie_change_on_failure); }),
    SUPPORTED("session-cookie-samesite", "None, Lax or Strict",
              { return one_of(v, {"None", "Lax", "Strict"}, a.session_cookie_samesite); }),
    SUPPORTED("session-cookie-conditional-samesite-none",
              "SameSite=None only for clients that accept it (by User-Agent: Chromium's list of incompatible clients)",
              { return boolean(v, a.session_cookie_conditional_samesite_none); }),
    SUPPORTED("ssl-redirect",
              "default true: plain HTTP to a host the Ingress has TLS for gets a 308 to https:// "
              "(not under /.well-known/acme-challenge)",
              { return boolean(v, a.ssl_redirect); }),
    NOT_YET("ssl-passthrough", "needs TLS routing before nginx's HTTP server; not scheduled"),
    SNIPPET("stream-snippet"),
    SUPPORTED("upstream-hash-by",
              "consistent (rendezvous) hashing of nginx variables and text, e.g. $request_uri or $http_x_user",
              { return hash_key(v, a.upstream_hash_by); }),
    NOT_YET("upstream-hash-by-subset",
            "subsets (a key picks a group, then a random endpoint in it) are not scheduled; the key picks one endpoint"),
    NOT_YET("upstream-hash-by-subset-size", "as upstream-hash-by-subset"),
    SUPPORTED("x-forwarded-prefix", "sends X-Forwarded-Prefix with this value upstream",
              { return header_value(v, a.x_forwarded_prefix); }),
    SUPPORTED("load-balance", "round_robin (default) or ewma (per worker, power of two choices)",
              { std::string m; auto p = one_of(v, {"round_robin", "ewma"}, m); if (p.empty()) a.load_balance_ewma = m == "ewma"; return p; }),
    SUPPORTED("upstream-vhost", "the Host header sent upstream (a host name and optional port, no variables)",
              { return upstream_host(v, a.upstream_vhost); }),
    ACCESS("whitelist-source-range",
           "the older name of allowlist-source-range, used when that is not set; a bad value denies (503) "
           "even then",
           { return source_ranges(v, a.whitelist_source_range); }),
    SUPPORTED("proxy-buffering", "off (default, as ingress-nginx) or on: buffer the backend's response",
              { return on_off(v, P::kBuffering, a.proxy_buffering); }),
    SUPPORTED("proxy-buffers-number", "2-1024 (default 4)",
              { return count(v, P::kBuffersNumber, a.proxy_buffers_number); }),
    SUPPORTED("proxy-buffer-size", "nginx size (default 4k): the response header buffer and each of the buffers",
              { return size(v, P::kBufferSize, a.proxy_buffer_size); }),
    SUPPORTED("proxy-max-temp-file-size", "nginx size (default 1024m; 0: no temporary files)",
              { return size(v, P::kMaxTempFileSize, a.proxy_max_temp_file_size); }),
    NOT_YET("ssl-ciphers", "per-host TLS settings are not scheduled; set ciphers for all hosts in nginx.conf"),
    NOT_YET("ssl-prefer-server-ciphers", "per-host TLS settings are not scheduled"),
    NOT_YET("connection-proxy-header", "not scheduled"),
    NOT_YET("enable-access-log", "not scheduled"),
    NEVER("enable-opentracing", "OpenTracing was removed from ingress-nginx; kroute's image has no tracing module"),
    NEVER("opentracing-trust-incoming-span", "as enable-opentracing"),
    NOT_YET("enable-opentelemetry", "kroute's image has no tracing module; not scheduled"),
    NOT_YET("opentelemetry-trust-incoming-span", "as enable-opentelemetry"),
    NOT_YET("opentelemetry-operation-name", "as enable-opentelemetry"),
    NEVER("enable-influxdb", "the InfluxDB module is not part of nginx"),
    NEVER("influxdb-measurement", "as enable-influxdb"),
    NEVER("influxdb-port", "as enable-influxdb"),
    NEVER("influxdb-host", "as enable-influxdb"),
    NEVER("influxdb-server-name", "as enable-influxdb"),
    SUPPORTED("use-regex",
              "every path of the host is a case-insensitive regex anchored at the start, longest first",
              { return boolean(v, a.use_regex); }),
    NEVER("enable-modsecurity", "kroute's image has no ModSecurity"),
    NEVER("enable-owasp-core-rules", "kroute's image has no ModSecurity"),
    NEVER("modsecurity-transaction-id", "kroute's image has no ModSecurity"),
    SNIPPET("modsecurity-snippet"),
    SUPPORTED("mirror-request-body", "\"off\": the copy goes without the request body (default on)",
              {
                a.mirror_request_body = v != "off";
                return {};
              }),
    SUPPORTED("mirror-target",
              "a copy of each request goes to this http(s) URL ($request_uri allowed), its answer ignored; "
              "the host is an IP address or a Service's <name>.<namespace>.svc[.cluster.local]",
              { return mirror_url(v, a.mirror_target); }),
    SUPPORTED("mirror-host", "the Host header of the copy (default: the host of mirror-target)",
              { return upstream_host(v, a.mirror_host); }),
};

#undef SUPPORTED
#undef ACCESS
#undef PLANNED
#undef NOT_YET
#undef NEVER
#undef SNIPPET

}  // namespace

std::span<const AnnotationSpec> annotation_specs() noexcept { return kSpecs; }

const AnnotationSpec* find_annotation(std::string_view name) noexcept {
  for (const AnnotationSpec& spec : kSpecs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const char* support_name(Support support) noexcept {
  switch (support) {
    case Support::kSupported: return "supported";
    case Support::kPlanned: return "planned";
    case Support::kNotYet: return "not yet";
    case Support::kNever: return "never";
  }
  return "unknown";
}

AnnotationReading read_annotations(const Json::Value& annotations, std::string_view prefix) {
  AnnotationReading reading;
  if (!annotations.isObject()) return reading;
  std::string key;
  std::vector<std::pair<std::string, std::string>> invalid;  // keys whose value was ignored, and why
  // The supported ones, in the table's order: kroute.dev's value, else (also when that one is invalid)
  // the one under `prefix`; a value that cannot be read is reported and leaves the default.
  std::vector<std::string> honoured;
  for (const AnnotationSpec& spec : kSpecs) {
    if (spec.read == nullptr) continue;
    std::string denied;  // an access annotation that could not be read, unless the other prefix's value reads
    for (const std::string_view p : {kOwnAnnotationPrefix, prefix}) {
      key = std::string(p) + "/" + std::string(spec.name);
      const Json::Value* value = annotations.find(key.data(), key.data() + key.size());
      if (value == nullptr) continue;
      std::string problem;
      if (!value->isString()) {
        problem = "the value is not a string";
      } else if (value->asString().size() > kMaxAnnotationValue) {
        problem = "the value is longer than " + std::to_string(kMaxAnnotationValue) + " bytes";
      } else if (!is_valid_utf8(value->asString())) {
        problem = "the value is not valid UTF-8";
      } else {
        problem = spec.read(value->asString(), reading.values);
      }
      if (problem.empty()) {
        honoured.push_back(key);
        denied.clear();
        break;
      }
      invalid.emplace_back(key, problem);
      if (spec.access) {
        if (denied.empty()) denied = "annotation " + key + ": " + problem;
      } else {
        reading.problems.push_back({"InvalidAnnotation", "annotation " + key + " is ignored: " + problem});
      }
    }
    if (!denied.empty()) {
      reading.problems.push_back({"AccessAnnotationInvalid",
                                  denied + "; access annotations fail closed: every path of the Ingress answers 503"});
      if (reading.values.access_denied.empty()) reading.values.access_denied = std::move(denied);
    }
  }
  // Every annotation under either prefix, for the audit (and refusals, for a Warning Event).
  for (auto it = annotations.begin(); it != annotations.end(); ++it) {
    const std::string name = it.name();
    std::string_view rest;
    for (const std::string_view p : {kOwnAnnotationPrefix, prefix}) {
      if (name.size() > p.size() + 1 && name.compare(0, p.size(), p) == 0 && name[p.size()] == '/') {
        rest = std::string_view(name).substr(p.size() + 1);
        break;
      }
    }
    if (rest.empty()) continue;
    const AnnotationSpec* spec = find_annotation(rest);
    AnnotationVerdict verdict{name, Verdict::kIgnored, {}};
    if (spec == nullptr) {
      verdict.why = "unknown: not an annotation kroute knows";
    } else if (spec->snippet) {
      verdict.verdict = Verdict::kRefused;
      verdict.why = std::string(spec->note);
      reading.problems.push_back({"AnnotationRefused", "annotation " + printable(name, 128) + " is refused: " +
                                                           std::string(spec->note)});
    } else if (spec->read == nullptr) {
      // "planned in issue 18 (...)", "not yet: why", "never: why".
      verdict.why = spec->support == Support::kPlanned
                        ? "planned in " + std::string(spec->note)
                        : std::string(support_name(spec->support)) + ": " + std::string(spec->note);
    } else if (std::find(honoured.begin(), honoured.end(), name) != honoured.end()) {
      verdict.verdict = Verdict::kHonoured;
    } else if (const auto bad = std::find_if(invalid.begin(), invalid.end(), [&](const auto& k) { return k.first == name; });
               bad != invalid.end()) {
      verdict.why = std::string(kInvalidValue) + bad->second;
    } else {
      verdict.why = "overridden by " + std::string(kOwnAnnotationPrefix) + "/" + std::string(rest);
    }
    reading.verdicts.push_back(std::move(verdict));
  }
  return reading;
}

std::string annotations_markdown(std::string_view prefix) {
  std::string out = "| annotation | kroute | notes |\n|---|---|---|\n";
  for (const AnnotationSpec& spec : kSpecs) {
    out += "| `" + std::string(prefix) + "/" + std::string(spec.name) + "` | " +
           (spec.snippet ? std::string("never (refused)") : std::string(support_name(spec.support))) + " | " +
           std::string(spec.note) + " |\n";
  }
  return out;
}

}  // namespace kroute::agent
