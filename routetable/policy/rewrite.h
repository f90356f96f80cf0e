// kRewrite: the URI sent upstream is template `a` (template.h) with the groups the rule's regex path
// captured; the query string is kept (after the template's own, if it has a '?'), as nginx's
// `rewrite ... break` does. From ingress-nginx's rewrite-target; applied by
// ngx_http_kroute_rewrite_module.c.
#pragma once

#include <string>

#include "record.h"

namespace kroute::policy {

inline PolicyRecord rewrite(std::string target) { return {.kind = PolicyKind::kRewrite, .a = std::move(target)}; }

std::string check_rewrite(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
