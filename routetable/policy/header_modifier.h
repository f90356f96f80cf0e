// kRequestHeader and kResponseHeader: the Gateway API's RequestHeaderModifier and ResponseHeaderModifier
// filters. One record per header action, in the order they apply: `code` the action, `a` the header
// name (any case; matched in any case), `b` the value ("" for remove).
//   kSetHeader:    the header has only this value: every header of that name is replaced
//   kAddHeader:    one more header of that name with this value (HTTP's list syntax: to the receiver,
//                  `X: a` + add b is `X: a, b`; the Gateway API's "appends to any existing values")
//   kRemoveHeader: every header of that name goes
// `backend`: kNoRecordBackend for every request of the rule; a backend for only the requests the rule sends
// to it (a filter of one backendRef, after the kSplit choice).
// Request headers change before the request is proxied (ngx_http_kroute_request_header_module.c, rewrite
// phase); response headers in a header filter, for the backend's responses and nginx's own alike
// (ngx_http_kroute_response_header_module.c). Headers that frame the message or belong to one connection
// (Content-Length, Transfer-Encoding, Connection and the other hop-by-hop headers) are nginx's to write:
// a record naming one is refused when the table is built.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum HeaderAction : std::uint16_t { kSetHeader = 1, kAddHeader = 2, kRemoveHeader = 3 };

inline PolicyRecord request_header(HeaderAction action, std::string name, std::string value = {}) {
  return {.kind = PolicyKind::kRequestHeader, .code = action, .a = std::move(name), .b = std::move(value)};
}
inline PolicyRecord response_header(HeaderAction action, std::string name, std::string value = {}) {
  return {.kind = PolicyKind::kResponseHeader, .code = action, .a = std::move(name), .b = std::move(value)};
}

// "" when nginx lets a route change header `name` (any case); else why not.
std::string check_modifiable_header(std::string_view name);
std::string check_request_header(const PolicyRecord& record, bool captures);
std::string check_response_header(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
