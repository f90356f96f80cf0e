#include "ingress/policies.h"

#include "policy/headers.h"
#include "policy/protocol.h"
#include "policy/redirect.h"
#include "policy/rewrite.h"

namespace kroute::agent {

bool tls_name_covers(const std::string& name, const std::string& host) {
  if (host.empty()) return false;
  if (name == host) return true;
  const std::size_t dot = host.find('.');
  return name.size() > 2 && name.compare(0, 2, "*.") == 0 && dot != std::string::npos && host[0] != '*' &&
         host.compare(dot + 1, std::string::npos, name, 2, std::string::npos) == 0;
}

bool regex_paths(const IngressAnnotations& a) { return a.use_regex || !a.rewrite_target.empty(); }

std::vector<PolicyRecord> rule_policies(const IngressAnnotations& a, const std::string& path) {
  std::vector<PolicyRecord> records;
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
  if (a.backend_protocol != policy::kHttp || a.proxy_http_10 || a.proxy_ssl_verify || a.proxy_ssl_server_name ||
      !a.proxy_ssl_secret.empty() || !a.proxy_ssl_name.empty()) {
    records.push_back(protocol_policy(a));
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
    for (const std::string& alias : a.server_alias) aliases.push_back({alias, host, 0});
  }
}

}  // namespace kroute::agent
