#include "basic_auth.h"

#include <string>

#include "kinds.h"

namespace kroute::policy {

namespace {

bool crypt_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
}

bool all_crypt_chars(std::string_view s) {
  for (const char c : s) {
    if (!crypt_char(c)) return false;
  }
  return true;
}

// Standard base64 of exactly `bytes` bytes (at_least: or more).
bool base64_of(std::string_view s, std::size_t bytes, bool at_least) {
  if (s.empty() || s.size() % 4 != 0) return false;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '=') {
      if (i + 2 < s.size()) return false;
      ++pad;
      continue;
    }
    if (pad != 0) return false;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return false;
  }
  const std::size_t decoded = s.size() / 4 * 3 - pad;
  return at_least ? decoded >= bytes : decoded == bytes;
}

// $id$[rounds=N$]salt$hash with a salt of 1-16 crypt characters and a hash of `length` of them.
bool modular_crypt(std::string_view rest, std::size_t length, bool rounds, std::size_t max_salt) {
  if (rounds && rest.starts_with("rounds=")) {
    const std::size_t end = rest.find('$');
    if (end == std::string_view::npos || end == 7 || end > 17) return false;
    for (const char c : rest.substr(7, end - 7)) {
      if (c < '0' || c > '9') return false;
    }
    rest.remove_prefix(end + 1);
  }
  const std::size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos || dollar > max_salt) return false;
  const std::string_view salt = rest.substr(0, dollar);
  const std::string_view hash = rest.substr(dollar + 1);
  return all_crypt_chars(salt) && hash.size() == length && all_crypt_chars(hash);
}

}  // namespace

std::string check_realm(std::string_view realm) {
  if (realm.size() > kMaxRealm) return "is longer than " + std::to_string(kMaxRealm) + " characters";
  for (const char c : realm) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':';
    if (!ok) return "may hold only letters, digits, spaces and -._~/:";
  }
  return {};
}

std::string check_password_hash(std::string_view hash) {
  if (hash.starts_with("{PLAIN}")) {
    for (const unsigned char c : hash) {
      if (c < 0x20 || c == 0x7f) return "{PLAIN} password with a control character";
    }
    return {};
  }
  if (hash.starts_with("{SHA}")) {
    return base64_of(hash.substr(5), 20, false) ? "" : "malformed {SHA} hash";
  }
  if (hash.starts_with("{SSHA}")) {
    return base64_of(hash.substr(6), 20, true) ? "" : "malformed {SSHA} hash";
  }
  if (hash.starts_with("$apr1$")) {
    return modular_crypt(hash.substr(6), 22, false, 8) ? "" : "malformed apr1 hash";
  }
  if (hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
    const std::string_view rest = hash.substr(4);
    const bool ok = rest.size() == 56 && rest[0] >= '0' && rest[0] <= '3' && rest[1] >= '0' && rest[1] <= '9' &&
                    (rest[0] - '0') * 10 + (rest[1] - '0') >= 4 && (rest[0] - '0') * 10 + (rest[1] - '0') <= 31 &&
                    rest[2] == '$' && all_crypt_chars(rest.substr(3));
    return ok ? "" : "malformed bcrypt hash";
  }
  if (hash.starts_with("$1$")) return modular_crypt(hash.substr(3), 22, false, 8) ? "" : "malformed MD5-crypt hash";
  if (hash.starts_with("$5$")) return modular_crypt(hash.substr(3), 43, true, 16) ? "" : "malformed SHA-256-crypt hash";
  if (hash.starts_with("$6$")) return modular_crypt(hash.substr(3), 86, true, 16) ? "" : "malformed SHA-512-crypt hash";
  if (hash.empty()) return "empty password hash";
  return "not a supported password hash (bcrypt, apr1, $1$/$5$/$6$ crypt, {SHA}, {SSHA} or {PLAIN})";
}

HtpasswdReading read_htpasswd(std::string_view text) {
  HtpasswdReading out;
  std::size_t number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++number;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "line " + std::to_string(number) + ": ";
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      out.problems.push_back(where + "no ':' between user and password hash");
      continue;
    }
    const std::string_view user = line.substr(0, colon);
    std::string_view hash = line.substr(colon + 1);
    hash = hash.substr(0, hash.find(':'));  // nginx's auth_basic: the hash ends at a further ':'
    if (user.empty() || user.size() > kMaxUserName) {
      out.problems.push_back(where + "empty or too long user name");
      continue;
    }
    bool printable = true;
    for (const unsigned char c : user) printable = printable && c >= 0x20 && c != 0x7f;
    if (!printable) {
      out.problems.push_back(where + "user name with a control character");
      continue;
    }
    if (std::string problem = check_password_hash(hash); !problem.empty()) {
      out.problems.push_back(where + problem);
      continue;
    }
    if (out.users.size() + line.size() + 1 > kMaxHtpasswd) {
      out.problems.push_back(where + "beyond " + std::to_string(kMaxHtpasswd) + " bytes of users");
      break;
    }
    out.users.append(user).append(":").append(hash).append("\n");
  }
  return out;
}

std::string check_basic_auth(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.flags != 0 || record.value != 0 || record.backend != kNoRecordBackend)
    return "basic auth takes no code, flags, value or backend";
  if (std::string problem = check_realm(record.b); !problem.empty()) return "realm " + problem;
  if (record.a.empty()) return "basic auth without users";
  if (record.a.size() > kMaxHtpasswd || !record.a.ends_with('\n')) return "malformed user list";
  // Each line as read_htpasswd wrote it: the module scans them without further checks.
  const HtpasswdReading again = read_htpasswd(record.a);
  if (!again.problems.empty() || again.users != record.a) return "malformed user list";
  return {};
}

}  // namespace kroute::policy
