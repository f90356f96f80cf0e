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
};
inline constexpr std::uint32_t kRedirectFlags = kOnlyRoot | kOnlyPlainHttp | kTrimTrailingSlash;

inline PolicyRecord redirect(std::uint16_t code, std::string location, std::uint32_t flags) {
  return {PolicyKind::kRedirect, code, flags, std::move(location), {}};
}

// Plain HTTP to https://, as ingress-nginx's ssl-redirect and force-ssl-redirect do: 308, the request's
// host without its port, and the request URI without a trailing '/' unless preserve-trailing-slash.
inline PolicyRecord https_redirect(bool preserve_trailing_slash) {
  return redirect(308, "https://$host$request_uri", kOnlyPlainHttp | (preserve_trailing_slash ? 0u : std::uint32_t{kTrimTrailingSlash}));
}

std::string check_redirect(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
