#include "ingress/policies.h"

#include "policy/affinity.h"
#include "policy/balance.h"
#include "policy/headers.h"
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
