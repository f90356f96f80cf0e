// kBasicAuth: HTTP basic authentication (ingress-nginx's auth-type: basic). `a`: the users, one
// "user:hash\n" line each, as the agent read and checked them from the auth-secret (htpasswd lines, or
// an auth-map's keys and values); secret material (kinds.cc marks it so: kroute-table prints its size
// only). `b`: the realm of the WWW-Authenticate challenge. Applied in nginx's access phase by
// ngx_http_kroute_auth_basic_module.c with nginx's own ngx_crypt, so the hashes are those nginx's
// auth_basic takes. A record with no user never exists: the agent denies the rule instead (deny.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "record.h"

namespace kroute::policy {

// Longest realm and user name taken; a realm is what ingress-nginx's auth-realm allows.
inline constexpr std::size_t kMaxRealm = 256;
inline constexpr std::size_t kMaxUserName = 256;
// The whole user list of one record (a Secret may hold at most 1 MiB anyway).
inline constexpr std::size_t kMaxHtpasswd = 1u << 20;

inline PolicyRecord basic_auth(std::string realm) {
  return {.kind = PolicyKind::kBasicAuth, .b = std::move(realm)};
}

// "" when `realm` is what ingress-nginx's auth-realm validator takes (letters, digits, space and
// "-._~/:"), so it needs no quoting in the challenge; else why not.
std::string check_realm(std::string_view realm);

// "" when `hash` is a password hash nginx's ngx_crypt verifies in a format kroute accepts: bcrypt
// ($2a$, $2b$, $2y$), apr1 ($apr1$), glibc MD5/SHA-256/SHA-512 crypt ($1$, $5$, $6$), {SHA}, {SSHA},
// {PLAIN}; else why not (never the hash itself).
std::string check_password_hash(std::string_view hash);

// htpasswd text read as nginx's auth_basic reads its user file: one "user:hash" per line (the hash ends
// at a further ':' or the line's end), '#' comment lines and empty lines skipped. `users` gets the
// usable lines as "user:hash\n", first line of a user first (nginx takes the first); `problems` says
// which lines were skipped and why, by line number (never their text: it holds hashes).
struct HtpasswdReading {
  std::string users;
  std::vector<std::string> problems;
};
HtpasswdReading read_htpasswd(std::string_view text);

std::string check_basic_auth(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
