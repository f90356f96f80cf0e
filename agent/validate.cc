#include "validate.h"

#include <cstdio>

#include "format.h"
#include "host.h"

namespace kroute::agent {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Length of the UTF-8 sequence at text[i], or 0 when it is not one (overlong forms, surrogates and
// code points above U+10FFFF are not).
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

std::string label_problem(std::string_view label, std::string_view text) {
  const std::string shown = "\"" + printable(text) + "\"";
  switch (dns_label_problem(label)) {
    case LabelProblem::kNone: return {};
    case LabelProblem::kEmpty: return shown + " has an empty label";
    case LabelProblem::kTooLong: return shown + " has a label longer than 63 characters";
    case LabelProblem::kCharacter: return shown + " may contain only lowercase letters, digits, '-' (and '.' between labels)";
    case LabelProblem::kHyphenAtEdge: return shown + " must start and end each label with a letter or digit";
  }
  return {};
}

}  // namespace

std::string check_dns_label(std::string_view text) {
  if (text.empty()) return "a name must not be empty";
  if (text.find('.') != std::string_view::npos) return "\"" + printable(text) + "\" must not contain '.'";
  return label_problem(text, text);
}

std::string check_dns_subdomain(std::string_view text) {
  if (text.empty()) return "a name must not be empty";
  if (text.size() > 253) return "\"" + printable(text) + "\" is longer than 253 characters";
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view label = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (std::string problem = label_problem(label, text); !problem.empty()) return problem;
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

std::string check_port_name(std::string_view text) {
  const std::string shown = "port name \"" + printable(text) + "\"";
  if (text.empty()) return "a port name must not be empty";
  if (text.size() > 15) return shown + " is longer than 15 characters";
  bool letter = false;
  for (char c : text) {
    if (!lower_alnum(c) && c != '-') return shown + " may contain only lowercase letters, digits and '-'";
    letter = letter || (c >= 'a' && c <= 'z');
  }
  if (!letter) return shown + " must contain a letter";
  if (text.front() == '-' || text.back() == '-' || text.find("--") != std::string_view::npos) {
    return shown + " must not start or end with '-' or contain \"--\"";
  }
  return {};
}

std::string check_rule_path(std::string_view path) {
  if (path.empty()) return {};
  if (path.front() != '/') return "path must start with '/'";
  if (path.size() > format::kMaxPathLength) return "path is longer than 4096 characters";
  for (char c : path) {
    if (c == ' ' || is_control(static_cast<unsigned char>(c))) return "path must not contain spaces or control characters";
  }
  if (!is_valid_utf8(path)) return "path is not valid UTF-8";
  // Segments between slashes; a trailing slash (an empty last segment) is allowed.
  std::size_t start = 1;
  while (start < path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return "path has an empty, '.' or '..' segment; nginx merges slashes and resolves dot segments in request "
             "paths, so this rule could never match";
    }
    start = end + 1;
  }
  return {};
}

std::string check_header_value(std::string_view text) {
  for (char c : text) {
    if (is_control(static_cast<unsigned char>(c))) return "\"" + printable(text) + "\" contains a control character";
  }
  if (!is_valid_utf8(text)) return "\"" + printable(text) + "\" is not valid UTF-8";
  return {};
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  const std::size_t shown = text.size() > limit ? limit : text.size();
  out.reserve(shown + 8);
  for (std::size_t i = 0; i < shown;) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0 || is_control(c) || c == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, c == '\\' ? "\\\\" : "\\x%02x", c);
      out += escaped;
      ++i;
    } else {
      // A sequence cut by the limit is dropped rather than split.
      if (i + n > shown) break;
      out.append(text.substr(i, n));
      i += n;
    }
  }
  if (shown < text.size()) out += "...";
  return out;
}

}  // namespace kroute::agent
