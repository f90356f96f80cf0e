// Every policy record kind, declared once: its name (for dump and logs) and the check the builder runs
// on each record. A new kind is a new header in this directory plus one line in kinds.cc.
#pragma once

#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

struct KindInfo {
  PolicyKind kind;
  const char* name;
  // "" when the record is sound; `captures`: the rule's path is a regex, so $1..$9 may be used.
  std::string (*check)(const PolicyRecord& record, bool captures);
};

// Null for a kind this build does not know.
const KindInfo* kind_info(PolicyKind kind) noexcept;
const char* kind_name(PolicyKind kind) noexcept;
std::string check_record(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
