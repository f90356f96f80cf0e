// Checks on the strings of cluster objects before they reach the route table, the agent's messages or
// nginx. The API server enforces most of them already; the agent checks again because table strings
// become nginx variables (access log fields, headers a configuration may set), Event messages and log
// fields, and because a proxy or an older server in between may validate less. Every check returns ""
// when the text is acceptable, else one sentence saying why not.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kroute::agent {

// RFC 1123 label: lowercase letters, digits and '-', starting and ending alphanumeric, at most 63
// characters. Namespaces and Service names (a Service name may start with a digit since Kubernetes 1.34's
// relaxed Service name validation; the stricter RFC 1035 form is a subset).
std::string check_dns_label(std::string_view text);
// RFC 1123 subdomain: dot-separated labels, at most 253 characters. Names of most objects, Secret names.
std::string check_dns_subdomain(std::string_view text);
// IANA service name: at most 15 characters of [a-z0-9-], at least one letter, no leading, trailing or
// doubled '-'. Service and EndpointSlice port names, an Ingress backend's port.name.
std::string check_port_name(std::string_view text);
// An Ingress rule path as nginx will compare it with request paths: "" or starting with '/', at most
// 4096 bytes, valid UTF-8, no spaces or control characters, and no empty, "." or ".." segment (nginx
// merges slashes and resolves dot segments in every request path first, so such a rule never matches).
std::string check_rule_path(std::string_view path);
// Whether text may be sent in an HTTP header field or written as one log field: no control characters
// (CR, LF, NUL, ... and DEL) and valid UTF-8.
std::string check_header_value(std::string_view text);

bool is_valid_utf8(std::string_view text);
// `text` for a message: control characters, DEL and bytes that are not UTF-8 as \xNN, at most `limit`
// bytes of the original (then "..."), so a message never carries a line break or megabytes of input.
std::string printable(std::string_view text, std::size_t limit = 128);

}  // namespace kroute::agent
