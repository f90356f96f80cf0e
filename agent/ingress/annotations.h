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

#include "policy/cors.h"
#include "policy/proxy_setting.h"
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
  // The proxy-* settings in the units of their records (policy/proxy_setting.h): milliseconds, bytes,
  // counts. The defaults are ingress-nginx's, which nginx.conf sets too; a rule gets a record only for a
  // setting that differs.
  std::uint64_t proxy_connect_timeout_ms = 5'000;
  std::uint64_t proxy_read_timeout_ms = 60'000;
  std::uint64_t proxy_send_timeout_ms = 60'000;
  std::uint64_t proxy_next_upstream = policy::kNextError | policy::kNextTimeout;
  std::uint64_t proxy_next_upstream_tries = 3;
  std::uint64_t proxy_next_upstream_timeout_ms = 0;
  std::uint64_t proxy_body_size = 1u << 20;
  std::uint64_t client_body_buffer_size = 8u << 10;
  std::uint64_t proxy_buffering = 0;
  std::uint64_t proxy_buffer_size = 4u << 10;
  std::uint64_t proxy_buffers_number = 4;
  std::uint64_t proxy_request_buffering = 1;
  std::uint64_t proxy_max_temp_file_size = 1024u << 20;
  std::vector<std::uint16_t> custom_http_errors;  // as written; 400-599
  bool disable_proxy_intercept_errors = false;
  std::string default_backend;  // a Service of the Ingress's namespace
  bool service_upstream = false;
  std::string mirror_target;  // http(s)://host[:port][path], $request_uri the only variable
  bool mirror_request_body = true;
  std::string mirror_host;
  // Canary (only when `canary`; agent/ingress/canary.h merges it into its primary's rule).
  bool canary = false;
  std::string canary_by_header;
  std::string canary_by_header_value;
  std::string canary_by_header_pattern;  // used when canary_by_header_value is empty
  std::string canary_by_cookie;
  std::uint32_t canary_weight = 0;
  std::uint32_t canary_weight_total = 100;
  // Session affinity (affinity: cookie) and balancing.
  bool affinity_cookie = false;
  bool affinity_persistent = false;      // affinity-mode: persistent (default balanced)
  bool affinity_canary_legacy = false;   // affinity-canary-behavior: legacy (default sticky)
  std::string session_cookie_name = "INGRESSCOOKIE";
  std::string session_cookie_path;       // "": the rule's path
  std::string session_cookie_domain;
  std::string session_cookie_samesite;   // "", None, Lax or Strict
  std::uint64_t session_cookie_expires = 0;  // seconds; 0: none
  std::string session_cookie_max_age;    // digits; "": none
  bool session_cookie_secure = false;
  bool session_cookie_change_on_failure = false;
  bool session_cookie_conditional_samesite_none = false;
  std::string upstream_hash_by;
  bool load_balance_ewma = false;        // load-balance: ewma (default round_robin)
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
  // allowlist-source-range, whitelist-source-range (its older name: used when allowlist-source-range is
  // not set) and denylist-source-range: packed CIDR lists (policy/cidr.h); empty when not set (an empty
  // value is refused, as ingress-nginx denies the location for it).
  std::string allowlist_source_range;
  std::string whitelist_source_range;
  std::string denylist_source_range;
  // External auth (auth-url and its family; policy/external_auth.h). Only with auth_url.
  std::string auth_url;            // http(s)://host[:port][path]; the compiler resolves a Service's name
  std::uint64_t auth_method = 0;   // policy::auth_method(); 0: GET
  std::string auth_signin;
  std::string auth_signin_redirect_param;  // "": rd
  std::string auth_response_headers;       // "A,B"
  std::string auth_request_redirect;       // "": $request_uri
  std::string auth_cache_key;              // "": no cache
  std::string auth_cache_duration;         // normalized ("200=300 ..."); "": the default
  bool auth_always_set_cookie = false;
  // Basic authentication (auth-type: basic): the Secret ("name" or "namespace/name" as written) and
  // the compiler reads the users from it (policy/basic_auth.h).
  bool auth_basic = false;
  std::string auth_secret;
  bool auth_secret_map = false;  // auth-secret-type: auth-map (default auth-file)
  std::string auth_realm;
  // CORS (policy/cors.h), with ingress-nginx's defaults. cors_origins: the valid entries of
  // cors-allow-origin separated by spaces, "*" for any origin, "" when none was valid (then no origin
  // gets CORS headers). cors_invalid: a methods, headers, exposed headers or credentials value could not
  // be read; the Ingress then gets no CORS headers at all rather than more than it asked for.
  bool enable_cors = false;
  std::string cors_origins = "*";
  std::string cors_methods{policy::kDefaultCorsMethods};
  std::string cors_headers{policy::kDefaultCorsHeaders};
  std::string cors_expose_headers;
  bool cors_credentials = true;
  std::uint64_t cors_max_age = policy::kDefaultCorsMaxAge;
  bool cors_invalid = false;
  // Rate, connection and bandwidth limits (policy/rate_limit.h); 0: none. Exempt: a packed CIDR list.
  std::uint64_t limit_rps = 0;
  std::uint64_t limit_rpm = 0;
  std::uint64_t limit_connections = 0;
  std::uint64_t limit_burst_multiplier = 5;
  std::string limit_exempt;
  std::uint64_t limit_rate_kb = 0;
  std::uint64_t limit_rate_after_kb = 0;
  // Client certificates (auth-tls-*, policy/client_cert.h): host-wide, with the CA of auth_tls_secret.
  std::string auth_tls_secret;                  // "namespace/name"; "": no client certificates
  std::uint8_t auth_tls_verify_client = 1;      // policy::VerifyClient; ingress-nginx's default: on
  std::uint8_t auth_tls_verify_depth = 1;
  std::string auth_tls_error_page;              // "" or an http(s) URL
  bool auth_tls_pass_certificate = false;
  std::string auth_tls_match_cn;                // "" or a regex on the subject DN
  // Access annotations (issue 19) fail closed: when one cannot be read, why (the first such), and every
  // rule of the Ingress answers 503 (policy/deny.h) instead of being served without the check.
  std::string access_denied;
  bool satisfy_any = false;  // satisfy: any (policy/satisfy.h); default all
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
  // Decides who may pass: a value that cannot be read denies the Ingress's rules (503) instead of
  // leaving the default, which would serve them open.
  bool access = false;
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
