// ingress-nginx's annotations as kroute reads them, each declared once (annotations.cc): its name, what
// kroute does with it (supported, planned in a named issue, not yet, or never and why), how a value is
// read and checked. The store reads Ingresses with it, `kroute-agent audit` reports with it, and
// docs/migrating-from-ingress-nginx.md is its table (`kroute-agent annotations --markdown`).
// Values stay data: nothing from an annotation is ever nginx configuration.
#pragma once

#include <json/json.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/protocol.h"
#include "policy/template.h"

namespace kroute::agent {

// kroute's own prefix; its annotations win over the same names under the ingress-nginx prefix.
inline constexpr std::string_view kOwnAnnotationPrefix = "kroute.dev";
inline constexpr std::string_view kDefaultAnnotationPrefix = "nginx.ingress.kubernetes.io";
// A longer value is ignored with a warning (Kubernetes allows 256 KiB for all annotations together).
inline constexpr std::size_t kMaxAnnotationValue = kMaxTemplateLength;

// What the supported annotations of one Ingress say, with ingress-nginx's defaults.
struct IngressAnnotations {
  bool ssl_redirect = true;
  bool force_ssl_redirect = false;
  bool preserve_trailing_slash = false;
  bool use_regex = false;
  std::string rewrite_target;
  std::string app_root;
  std::string permanent_redirect;
  std::uint16_t permanent_redirect_code = 301;
  std::string temporal_redirect;
  std::uint16_t temporal_redirect_code = 302;
  bool from_to_www_redirect = false;
  std::vector<std::string> server_alias;
  std::string x_forwarded_prefix;
  std::string upstream_vhost;
  // How nginx talks to the backend (policy/protocol.h): backend-protocol, proxy-http-version, proxy-ssl-*.
  std::uint16_t backend_protocol = policy::kHttp;
  bool proxy_http_10 = false;
  std::string proxy_ssl_secret;  // "namespace/name"
  bool proxy_ssl_verify = false;
  std::uint8_t proxy_ssl_verify_depth = 1;
  std::string proxy_ssl_name;
  std::string proxy_ssl_ciphers;  // "": OpenSSL's default
  bool proxy_ssl_server_name = false;
  // The TLS versions allowed (low bytes of 0x0303, 0x0304); ingress-nginx's default is TLSv1.2 only.
  std::uint8_t proxy_ssl_min_version = 3;
  std::uint8_t proxy_ssl_max_version = 3;
  bool operator==(const IngressAnnotations&) const = default;
};

// A part of an Ingress that was dropped while reading it (an invalid defaultBackend, TLS entry or
// annotation), for a Warning Event on the Ingress. The message is printable (validate.h).
struct IngressProblem {
  std::string reason;
  std::string message;
  bool operator==(const IngressProblem&) const = default;
};

enum class Support { kSupported, kPlanned, kNotYet, kNever };

struct AnnotationSpec {
  std::string_view name;  // after the prefix
  Support support;
  // Supported: what kroute does; planned: the issue; not yet / never: why.
  std::string_view note;
  // Supported only: reads a value into `out`; "" or why the value is ignored (out keeps the default).
  std::string (*read)(std::string_view value, IngressAnnotations& out) = nullptr;
  bool snippet = false;  // nginx configuration text: refused
};

std::span<const AnnotationSpec> annotation_specs() noexcept;
const AnnotationSpec* find_annotation(std::string_view name) noexcept;
const char* support_name(Support support) noexcept;

// What kroute did with one annotation of an Ingress.
// How an ignored verdict's `why` starts when the value could not be read (then the reason follows);
// kroute-table's descriptions report those as errors.
inline constexpr std::string_view kInvalidValue = "invalid value: ";
enum class Verdict { kHonoured, kIgnored, kRefused };
struct AnnotationVerdict {
  std::string key;   // as written, with its prefix
  Verdict verdict;
  // Ignored: "planned in issue N (...)", "not yet: ...", "never: ...", "invalid value: ...", "unknown: ..."
  // or "overridden by kroute.dev/..."; refused: why.
  std::string why;
};

struct AnnotationReading {
  IngressAnnotations values;
  std::vector<IngressProblem> problems;  // supported annotations whose value was ignored, snippets refused
  std::vector<AnnotationVerdict> verdicts;  // every annotation under either prefix
};

// Reads metadata.annotations (any JSON; non-objects read as none). `prefix`: --annotation-prefix.
AnnotationReading read_annotations(const Json::Value& annotations, std::string_view prefix);

// The migration table: every annotation with its status, as Markdown.
std::string annotations_markdown(std::string_view prefix);

}  // namespace kroute::agent
