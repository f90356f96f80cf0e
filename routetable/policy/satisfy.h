// kSatisfy: the rule's access checks (allow and deny lists, basic auth, external auth) let a request
// pass when any one of them does, instead of all (nginx's `satisfy any`). Made from ingress-nginx's
// `satisfy: any`; without the record every check must pass. Client certificates and the limits are not
// access checks here, as in ingress-nginx. Applied by ngx_http_kroute_access_module.c, which sets the
// request's copy of the location's `satisfy` before the access phase decides.
#pragma once

#include <string>

#include "record.h"

namespace kroute::policy {

inline PolicyRecord satisfy_any() { return {.kind = PolicyKind::kSatisfy}; }

std::string check_satisfy(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
