// kErrorPages: `backend` (the error backend) answers instead of the rule's Service in two cases. The
// statuses listed in `a` (an upstream's answer or kroute's own 503) go to it as ingress-nginx's custom
// error location does: the request, with X-Code, X-Format, X-Original-URI and the route's names as
// headers, is proxied to the error backend, and the client gets the original status with its body.
// With kWhenNoEndpoints, a request of a rule whose Service has no ready endpoints is proxied to it as
// it is. Made from ingress-nginx's custom-http-errors and default-backend; applied by
// ngx_http_kroute_error_pages_module.c.
//
// `a` is the status list as text, "404,503": three digits per status, ascending, no repeats, 400-599.
// Text keeps dumps and descriptions readable; the fixed width lets the module read status i at 4*i
// without parsing, and a list is what it hands nginx (an error_page entry per status) anyway.
// `b`: the rule's Service port as the Ingress names it (number or name), for X-Service-Port.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "record.h"

namespace kroute::policy {

enum ErrorPagesFlags : std::uint32_t {
  kWhenNoEndpoints = 1,  // default-backend: the error backend serves a rule without ready endpoints
  kOnlyOwnErrors = 2,    // disable-proxy-intercept-errors: the Service's answers pass unchanged
};
inline constexpr std::uint32_t kErrorPagesFlags = kWhenNoEndpoints | kOnlyOwnErrors;
inline constexpr std::uint16_t kFirstErrorStatus = 400;
inline constexpr std::uint16_t kLastErrorStatus = 599;

// `statuses` need not be sorted; repeats are dropped. `backend` is a model backend index (the agent's
// compiler settles it and `service_port` after rule_policies made the record).
PolicyRecord error_pages(std::span<const std::uint16_t> statuses, std::uint32_t flags, std::uint32_t backend,
                         std::string service_port);

std::string check_error_pages(const PolicyRecord& record, bool captures);
// "" when `list` is a status list as `a` holds it.
std::string check_status_list(std::string_view list);

}  // namespace kroute::policy
