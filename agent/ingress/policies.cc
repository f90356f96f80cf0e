#include "ingress/policies.h"

#include <algorithm>

#include "hashing.h"
#include "policy/affinity.h"
#include "policy/balance.h"
#include "policy/basic_auth.h"
#include "policy/cors.h"
#include "policy/client_cert.h"
#include "policy/deny.h"
#include "policy/error_pages.h"
#include "policy/external_auth.h"
#include "policy/headers.h"
#include "policy/proxy_setting.h"
#include "policy/mirror.h"
#include "policy/protocol.h"
#include "policy/rate_limit.h"
#include "policy/redirect.h"
#include "policy/rewrite.h"
#include "policy/satisfy.h"
#include "policy/source_range.h"

#include <utility>

namespace kroute::agent {

bool tls_name_covers(const std::string& name, const std::string& host) {
  if (host.empty()) return false;
  if (name == host) return true;
  const std::size_t dot = host.find('.');
  return name.size() > 2 && name.compare(0, 2, "*.") == 0 && dot != std::string::npos && host[0] != '*' &&
         host.compare(dot + 1, std::string::npos, name, 2, std::string::npos) == 0;
}

std::string mirror_target_host(std::string_view target) {
  const std::size_t start = target.find("://");
  if (start == std::string_view::npos) return {};
  std::string_view rest = target.substr(start + 3);
  rest = rest.substr(0, std::min(rest.find_first_of("/$?"), rest.size()));
  if (rest.starts_with('[')) return std::string(rest.substr(0, rest.find(']') + 1));
  return std::string(rest.substr(0, rest.find(':')));
}

bool regex_paths(const IngressAnnotations& a) { return a.use_regex || !a.rewrite_target.empty(); }

std::string signin_redirect(const std::string& signin, const std::string& param) {
  const std::string name = param.empty() ? "rd" : param;
  const std::size_t query = signin.find('?');
  if (query != std::string::npos) {
    // As ingress-nginx: a URL that already has a non-empty redirect parameter stays as it is.
    for (std::size_t at = signin.find(name + "=", query); at != std::string::npos; at = signin.find(name + "=", at + 1)) {
      const char before = signin[at - 1];
      const std::size_t value = at + name.size() + 1;
      if ((before == '?' || before == '&') && value < signin.size() && signin[value] != '&') return signin;
    }
  }
  return signin + (query == std::string::npos ? "?" : "&") + name + "=$scheme://$http_host$escaped_request_uri";
}

std::vector<PolicyRecord> external_auth_policies(const IngressAnnotations& a, const std::string& path) {
  std::vector<PolicyRecord> records;
  if (a.auth_url.empty()) return records;
  records.push_back(policy::external_auth(a.auth_url, mirror_target_host(a.auth_url), a.auth_method,
                                          a.auth_always_set_cookie ? std::uint32_t{policy::kAuthAlwaysSetCookie} : 0u));
  if (!a.auth_signin.empty()) {
    records.push_back(policy::external_auth_part(policy::kAuthSignin,
                                                 signin_redirect(a.auth_signin, a.auth_signin_redirect_param)));
  }
  if (!a.auth_response_headers.empty())
    records.push_back(policy::external_auth_part(policy::kAuthResponseHeaders, a.auth_response_headers));
  if (!a.auth_request_redirect.empty())
    records.push_back(policy::external_auth_part(policy::kAuthRequestRedirect, a.auth_request_redirect));
  if (!a.auth_cache_key.empty()) {
    records.push_back(policy::external_auth_part(
        policy::kAuthCache, a.auth_cache_key,
        a.auth_cache_duration.empty() ? *policy::parse_auth_cache_durations(policy::kDefaultAuthCacheDuration)
                                      : a.auth_cache_duration,
        payload_checksum(path.data(), path.size())));
  }
  return records;
}

namespace {

// One kProxySetting record per setting the annotations change from ingress-nginx's default (which
// nginx.conf sets), so a rule without them costs the module nothing.
void proxy_settings(const IngressAnnotations& a, std::vector<PolicyRecord>& records) {
  using P = policy::ProxySetting;
  static const IngressAnnotations defaults;
  const std::pair<P, std::uint64_t IngressAnnotations::*> settings[] = {
      {P::kConnectTimeout, &IngressAnnotations::proxy_connect_timeout_ms},
      {P::kReadTimeout, &IngressAnnotations::proxy_read_timeout_ms},
      {P::kSendTimeout, &IngressAnnotations::proxy_send_timeout_ms},
      {P::kNextUpstream, &IngressAnnotations::proxy_next_upstream},
      {P::kNextUpstreamTries, &IngressAnnotations::proxy_next_upstream_tries},
      {P::kNextUpstreamTimeout, &IngressAnnotations::proxy_next_upstream_timeout_ms},
      {P::kBodySize, &IngressAnnotations::proxy_body_size},
      {P::kBodyBufferSize, &IngressAnnotations::client_body_buffer_size},
      {P::kBuffering, &IngressAnnotations::proxy_buffering},
      {P::kBufferSize, &IngressAnnotations::proxy_buffer_size},
      {P::kBuffersNumber, &IngressAnnotations::proxy_buffers_number},
      {P::kRequestBuffering, &IngressAnnotations::proxy_request_buffering},
      {P::kMaxTempFileSize, &IngressAnnotations::proxy_max_temp_file_size},
  };
  for (const auto& [setting, field] : settings) {
    if (a.*field != defaults.*field) records.push_back(policy::proxy_setting(setting, a.*field));
  }
}

// limit-connections, limit-rps, limit-rpm (ingress-nginx's order) and limit-rate. The Ingress's uid (`a`)
// and the status of a refusal are the compiler's to fill in (complete_limits).
void limit_policies(const IngressAnnotations& a, std::vector<PolicyRecord>& records) {
  const std::pair<policy::RateLimitKind, std::uint64_t> limits[] = {
      {policy::kConnections, a.limit_connections},
      {policy::kRequestsPerSecond, a.limit_rps},
      {policy::kRequestsPerMinute, a.limit_rpm},
  };
  for (const auto& [kind, limit] : limits) {
    if (limit != 0) records.push_back(policy::rate_limit(kind, limit, a.limit_burst_multiplier, a.limit_exempt));
  }
  if (a.limit_rate_kb != 0) records.push_back(policy::bandwidth(a.limit_rate_kb, a.limit_rate_after_kb));
}

}  // namespace

std::vector<PolicyRecord> rule_policies(const IngressAnnotations& a, const std::string& path) {
  std::vector<PolicyRecord> records;
  // An access annotation that cannot be applied: the rule answers 503 first, whatever else it has.
  if (!a.access_denied.empty()) records.push_back(policy::deny(a.access_denied));
  if (a.satisfy_any) records.push_back(policy::satisfy_any());
  // Who may pass by address (access phase): the deny list, then the allow list (allowlist-source-range,
  // else its older name whitelist-source-range, as ingress-nginx's alias).
  if (!a.denylist_source_range.empty())
    records.push_back(policy::source_range(policy::kSourceDeny, a.denylist_source_range));
  if (const std::string& allow = a.allowlist_source_range.empty() ? a.whitelist_source_range : a.allowlist_source_range;
      !allow.empty()) {
    records.push_back(policy::source_range(policy::kSourceAllow, allow));
  }
  std::vector<PolicyRecord> auth = external_auth_policies(a, path);
  records.insert(records.end(), auth.begin(), auth.end());
  // The users come from the Secret: the compiler fills them in (complete_basic_auth) or denies the rule.
  if (a.auth_basic) records.push_back(policy::basic_auth(a.auth_realm));
  // An origin list none of whose entries was valid allows no origin: no record, as ingress-nginx.
  if (a.enable_cors && !a.cors_invalid && !a.cors_origins.empty()) {
    const bool any = a.cors_origins == "*";
    const std::uint32_t flags = (a.cors_credentials ? std::uint32_t{policy::kCorsCredentials} : 0u) |
                                (any ? std::uint32_t{policy::kCorsAnyOrigin} : 0u);
    records.push_back(policy::cors(flags, any ? std::string() : a.cors_origins, a.cors_methods, a.cors_headers,
                                   a.cors_expose_headers, a.cors_max_age));
  }
  // temporal-redirect wins over permanent-redirect (ingress-nginx's redirect parser reads it first).
  if (!a.temporal_redirect.empty()) {
    records.push_back(policy::redirect(a.temporal_redirect_code, a.temporal_redirect, 0));
  } else if (!a.permanent_redirect.empty()) {
    records.push_back(policy::redirect(a.permanent_redirect_code, a.permanent_redirect, 0));
  }
  if ((a.force_ssl_redirect || a.ssl_redirect) && !path.starts_with(kNoTlsRedirectLocation)) {
    records.push_back(policy::https_redirect(a.preserve_trailing_slash, !a.force_ssl_redirect));
  }
  if (!a.rewrite_target.empty()) records.push_back(policy::rewrite(a.rewrite_target));
  if (!a.upstream_vhost.empty()) records.push_back(policy::upstream_host(a.upstream_vhost));
  if (!a.x_forwarded_prefix.empty()) records.push_back(policy::forwarded_prefix(a.x_forwarded_prefix));
  proxy_settings(a, records);
  if (!a.custom_http_errors.empty() || !a.default_backend.empty()) {
    // The error backend and the Service port are the compiler's to settle (settle_records).
    const std::uint32_t flags = (a.default_backend.empty() ? 0u : std::uint32_t{policy::kWhenNoEndpoints}) |
                                (a.disable_proxy_intercept_errors ? std::uint32_t{policy::kOnlyOwnErrors} : 0u);
    records.push_back(policy::error_pages(a.custom_http_errors, flags, kNoRecordBackend, ""));
  }
  if (!a.mirror_target.empty()) {
    // A target without a path gets the request's URI (ingress-nginx would send its internal location's).
    const std::size_t authority = a.mirror_target.find("://") + 3;
    const bool has_path = a.mirror_target.find_first_of("/$?", authority) != std::string::npos;
    records.push_back(policy::mirror(has_path ? a.mirror_target : a.mirror_target + "$request_uri",
                                     a.mirror_host.empty() ? mirror_target_host(a.mirror_target) : a.mirror_host,
                                     a.mirror_request_body));
  }
  if (a.backend_protocol != policy::kHttp || a.proxy_http_10 || a.proxy_ssl_verify || a.proxy_ssl_server_name ||
      !a.proxy_ssl_secret.empty() || !a.proxy_ssl_name.empty()) {
    records.push_back(protocol_policy(a));
  }
  limit_policies(a, records);
  std::vector<PolicyRecord> traffic = traffic_policies(a, path, kNoRecordBackend);
  records.insert(records.end(), traffic.begin(), traffic.end());
  return records;
}

std::vector<PolicyRecord> traffic_policies(const IngressAnnotations& a, const std::string& path,
                                           std::uint32_t backend) {
  std::vector<PolicyRecord> records;
  // ingress-nginx's balancer.lua: affinity wins over upstream-hash-by, which wins over load-balance.
  if (a.affinity_cookie) {
    std::string attributes = "; Path=";
    attributes += !a.session_cookie_path.empty()          ? a.session_cookie_path
                  : path.empty() || regex_paths(a) ? std::string("/")
                                                           : path;
    if (!a.session_cookie_domain.empty()) attributes += "; Domain=" + a.session_cookie_domain;
    if (!a.session_cookie_max_age.empty()) attributes += "; Max-Age=" + a.session_cookie_max_age;
    // Conditional SameSite=None: the module adds it per client.
    const bool conditional = a.session_cookie_conditional_samesite_none && a.session_cookie_samesite == "None";
    if (!a.session_cookie_samesite.empty() && !conditional) attributes += "; SameSite=" + a.session_cookie_samesite;
    attributes += "; HttpOnly";
    const std::uint32_t flags = (a.session_cookie_change_on_failure ? std::uint32_t{policy::kChangeOnFailure} : 0u) |
                                (a.affinity_canary_legacy ? std::uint32_t{policy::kLegacyCanary} : 0u) |
                                (a.session_cookie_secure ? std::uint32_t{policy::kSecure} : 0u) |
                                (conditional ? std::uint32_t{policy::kConditionalSameSiteNone} : 0u);
    records.push_back(policy::affinity(a.affinity_persistent ? policy::kPersistent : policy::kBalanced, flags,
                                       a.session_cookie_name, std::move(attributes), a.session_cookie_expires));
    records.back().backend = backend;
  }
  if (!a.upstream_hash_by.empty()) {
    records.push_back(policy::balance(policy::kHash, a.upstream_hash_by));
    records.back().backend = backend;
  } else if (a.load_balance_ewma) {
    records.push_back(policy::balance(policy::kEwma));
    records.back().backend = backend;
  }
  return records;
}

PolicyRecord protocol_policy(const IngressAnnotations& a) {
  const std::uint32_t flags = (a.proxy_http_10 ? std::uint32_t{policy::kHttp10} : 0u) |
                              (a.proxy_ssl_verify ? std::uint32_t{policy::kVerify} : 0u) |
                              (a.proxy_ssl_server_name ? std::uint32_t{policy::kServerName} : 0u);
  // As ingress-nginx, the TLS versions and depth come with a Secret; without one nginx's defaults hold.
  const std::uint64_t numbers =
      a.proxy_ssl_secret.empty()
          ? 0
          : policy::tls_numbers(a.proxy_ssl_min_version, a.proxy_ssl_max_version, a.proxy_ssl_verify_depth, 0);
  std::string name = a.proxy_ssl_name;
  if (!a.proxy_ssl_secret.empty() && !a.proxy_ssl_ciphers.empty()) (name += ' ') += a.proxy_ssl_ciphers;
  return policy::protocol(static_cast<policy::UpstreamProtocol>(a.backend_protocol), flags, numbers,
                          std::move(name));
}

PolicyRecord client_cert_policy(const IngressAnnotations& a) {
  return policy::client_cert(static_cast<policy::VerifyClient>(a.auth_tls_verify_client), a.auth_tls_verify_depth,
                             a.auth_tls_pass_certificate, a.auth_tls_error_page, a.auth_tls_match_cn);
}

void host_policies(const IngressAnnotations& a, const std::vector<std::string>& hosts,
                   const std::function<bool(const std::string&)>& tls, std::vector<HostPolicy>& policies,
                   std::vector<HostAlias>& aliases) {
  for (const std::string& host : hosts) {
    if (host.empty()) continue;
    if (!a.app_root.empty()) {
      // As ingress-nginx's server-level `if ($uri = /) { return 302 $scheme://$http_host<app-root>; }`.
      policies.push_back({host, 0, {policy::redirect(302, "$scheme://$http_host" + a.app_root, policy::kOnlyRoot)}, false});
    }
    if (a.from_to_www_redirect && !host.starts_with("*.")) {
      // The other name redirects to the Ingress's: www.<host> for <host>, <host> for www.<host>.
      const std::string from = host.starts_with("www.") ? host.substr(4) : "www." + host;
      const std::string& to = host;
      // ingress-nginx's redirect server: 308 to the other name, https:// when there is a certificate for it.
      const std::string scheme = tls(to) ? "https" : "$scheme";
      policies.push_back(
          {from, 0, {policy::redirect(308, scheme + "://" + to + "$request_uri", policy::kTrimTrailingSlash)}, true});
    }
    if (!a.auth_tls_secret.empty() && a.access_denied.empty()) {
      // ingress-nginx's server-level ssl_verify_client: the whole host. The compiler adds the CA (`a`).
      policies.push_back({host, 0, {client_cert_policy(a)}, false});
    }
    for (const std::string& alias : a.server_alias) aliases.push_back({alias, host, 0});
  }
}

}  // namespace kroute::agent
