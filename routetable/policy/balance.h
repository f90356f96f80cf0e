// kBalance: how the balancer chooses among a backend's ready endpoints, when no session cookie does
// (ingress-nginx: affinity, then upstream-hash-by, then load-balance). `backend`: as kAffinity's.
//   code kRoundRobin: smooth weighted round-robin per worker (also the default without a record).
//   code kEwma: power of two choices by the lower EWMA of response time, per worker.
//   code kHash: consistent hashing of `a`, an expression of nginx variables ($request_uri,
//               $remote_addr, $http_x, $cookie_x, ...) expanded per request; rendezvous hashing, so
//               adding or removing an endpoint moves only the keys that go to (or came from) it.
#pragma once

#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

enum BalanceCode : std::uint16_t { kRoundRobin = 0, kEwma = 1, kHash = 2 };

inline PolicyRecord balance(std::uint16_t method, std::string hash_key = {}) {
  return {.kind = PolicyKind::kBalance, .code = method, .a = std::move(hash_key)};
}

std::string check_balance(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
