// An Ingress's annotations as the route model's policy records (routetable/policy/): per rule, per host
// (app-root, from-to-www-redirect) and host aliases (server-alias). The order of a rule's records is the
// order ingress-nginx applies them: its location's `return` before its HTTPS redirect.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ingress/annotations.h"
#include "model.h"

namespace kroute::agent {

// ingress-nginx's no-tls-redirect-locations default: paths under it are never redirected to HTTPS, so an
// HTTP-01 solver (cert-manager) answers on plain HTTP even on a host that already has TLS.
inline constexpr std::string_view kNoTlsRedirectLocation = "/.well-known/acme-challenge";

// Whether a name of an Ingress's spec.tls covers a rule's host: the same name, or a one-label wildcard
// ("*.example.com" covers "a.example.com", not "a.b.example.com" nor "*.example.com"). The records of a
// host the Ingress has TLS for redirect plain HTTP (ssl-redirect).
bool tls_name_covers(const std::string& tls_name, const std::string& host);

// Whether the annotations make the Ingress's paths regular expressions (use-regex or rewrite-target).
bool regex_paths(const IngressAnnotations& annotations);

// The host of a mirror-target URL (as mirror_url in annotations.cc accepts it), without its port: the
// mirror's Host header unless mirror-host says otherwise (ingress-nginx's url.Hostname()).
std::string mirror_target_host(std::string_view target);

// auth-signin with its redirect parameter (`param`, "" for rd) appended, unless the URL has it already:
// rd=$scheme://$http_host$escaped_request_uri, as ingress-nginx's buildAuthSignURL.
std::string signin_redirect(const std::string& signin, const std::string& param);

// The kExternalAuth records of auth-url and its family (none without auth-url). The compiler resolves a
// Service name in the URL to its ClusterIP, or denies the rule.
// `path`: the rule's, whose hash keeps its cached answers apart from other rules'.
std::vector<PolicyRecord> external_auth_policies(const IngressAnnotations& annotations, const std::string& path);

// The records of one rule. Its https redirect (ssl-redirect) holds only if some Ingress has TLS for the
// host, which the builder settles (policy::kIfHostHasTls).
std::vector<PolicyRecord> rule_policies(const IngressAnnotations& annotations, const std::string& path);

// The records that choose an endpoint (affinity, upstream-hash-by, load-balance), part of
// rule_policies(); a canary's own apply to its backend (`backend`, a model index) instead of the rule's
// (kNoRecordBackend).
std::vector<PolicyRecord> traffic_policies(const IngressAnnotations& annotations, const std::string& path,
                                           std::uint32_t backend);

// The kProtocol record of a rule (policy/protocol.h) as the annotations alone make it: the compiler adds
// the CA and client certificate of proxy-ssl-secret and the default TLS name, which need the store.
PolicyRecord protocol_policy(const IngressAnnotations& annotations);

// The kClientCert record of auth-tls-* (policy/client_cert.h) without its CA, which the compiler adds
// from the Secret. Host-wide: host_policies() gives one to every host of the Ingress.
PolicyRecord client_cert_policy(const IngressAnnotations& annotations);

// The host-wide records and aliases of an Ingress whose rules name `hosts` (distinct, as written; "" for
// host-less rules, which get none). `tls(host)`: the Ingress has TLS for that name. `source` is set as
// the model's index of the Ingress when the table is assembled.
void host_policies(const IngressAnnotations& annotations, const std::vector<std::string>& hosts,
                   const std::function<bool(const std::string&)>& tls, std::vector<HostPolicy>& policies,
                   std::vector<HostAlias>& aliases);

}  // namespace kroute::agent
