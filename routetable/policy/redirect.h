// kRedirect: the request is answered with `code` (300-308) and a Location made from template `a`
// (template.h), without reaching a backend. Flags narrow when it applies. Made from ingress-nginx's
// permanent-redirect, temporal-redirect, app-root, ssl-redirect / force-ssl-redirect and
// from-to-www-redirect; applied by the module's redirect phase (ngx_http_kroute_redirect_module.c).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum RedirectFlags : std::uint32_t {
  kOnlyRoot = 1,           // only a request for "/" (app-root)
  kOnlyPlainHttp = 2,      // only a request that did not come over TLS (ssl-redirect)
  kTrimTrailingSlash = 4,  // $request_uri loses one trailing '/' (ingress-nginx's https and www redirects)
  // Settled by the builder, never in a snapshot: the record stays (without this flag) only when a TLS
  // entry of any Ingress names the rule's host or its one-label wildcard, as ingress-nginx redirects
  // every location of a server that has a certificate (ssl-redirect).
  kIfHostHasTls = 8,
};
inline constexpr std::uint32_t kRedirectFlags = kOnlyRoot | kOnlyPlainHttp | kTrimTrailingSlash | kIfHostHasTls;

inline PolicyRecord redirect(std::uint16_t code, std::string location, std::uint32_t flags) {
  return {.kind = PolicyKind::kRedirect, .code = code, .flags = flags, .a = std::move(location)};
}

// Plain HTTP to https://, as ingress-nginx's ssl-redirect and force-ssl-redirect do: 308, the request's
// host without its port, and the request URI without a trailing '/' unless preserve-trailing-slash.
// `if_host_has_tls`: ssl-redirect (only when the host has a certificate); false: force-ssl-redirect.
inline PolicyRecord https_redirect(bool preserve_trailing_slash, bool if_host_has_tls = false) {
  return redirect(308, "https://$host$request_uri",
                  kOnlyPlainHttp | (preserve_trailing_slash ? 0u : std::uint32_t{kTrimTrailingSlash}) |
                      (if_host_has_tls ? std::uint32_t{kIfHostHasTls} : 0u));
}

std::string check_redirect(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
