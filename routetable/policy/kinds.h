// Every policy record kind, declared once: its name (for dump and logs) and the check the builder runs
// on each record. A new kind is a new header in this directory plus one line in kinds.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

// Which of a record's strings are secret (htpasswd hashes, private keys): kroute-table prints only their
// size, and nothing logs them.
enum SecretFields : unsigned { kNoSecret = 0, kSecretA = 1, kSecretB = 2 };
// Which of a record's strings are packed CIDR lists (cidr.h): kroute-table prints them as text.
enum CidrFields : unsigned { kNoCidr = 0, kCidrA = 1, kCidrB = 2 };
static_assert(unsigned{kCidrA} == unsigned{kSecretA} && unsigned{kCidrB} == unsigned{kSecretB},
              "one bit per field, whatever it says of it");

struct KindInfo {
  PolicyKind kind;
  const char* name;
  // "" when the record is sound; `captures`: the rule's path is a regex, so $1..$9 may be used.
  std::string (*check)(const PolicyRecord& record, bool captures);
  unsigned secret = kNoSecret;
  unsigned cidr = kNoCidr;
  // Names of the kind's codes, by code ("" for none), which kroute-table prints and reads; empty: the
  // codes are numbers.
  std::span<const char* const> codes = {};
  // The kind applies to a whole host (HostPolicy records) and means nothing on a rule: the builder refuses
  // a rule that carries one.
  bool host_only = false;
};

// Null for a kind this build does not know.
const KindInfo* kind_info(PolicyKind kind) noexcept;
const char* kind_name(PolicyKind kind) noexcept;
// SecretFields of the kind (kNoSecret for an unknown one).
unsigned secret_fields(PolicyKind kind) noexcept;
// CidrFields of the kind (kNoCidr for an unknown one).
unsigned cidr_fields(PolicyKind kind) noexcept;
std::string check_record(const PolicyRecord& record, bool captures);
// The name of a kind's code, or null when it has none.
const char* code_name(PolicyKind kind, std::uint16_t code) noexcept;
// The code named `name` for the kind; false when there is none.
bool code_by_name(PolicyKind kind, std::string_view name, std::uint16_t& code) noexcept;
// The kind named `name` ("split"); false when there is none.
bool kind_by_name(std::string_view name, PolicyKind& kind) noexcept;

}  // namespace kroute::policy
