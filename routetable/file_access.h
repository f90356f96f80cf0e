// Who may read the route table's files: the mode and group flags of kroute-agent (--table-mode,
// --table-group) and kroute-table build (--mode, --group) are parsed here, each program with its policy.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace kroute {

// Octal permission bits such as "0640" or "640" (no file type, setuid or sticky bits: at most 0777).
// `flag` names the option in the message. With `others_may_read` false, bits for others are refused: the
// snapshots hold private keys. Returns false and sets `error` on a refusal.
bool parse_file_mode(std::string_view text, std::string_view flag, bool others_may_read, mode_t& mode,
                     std::string& error);

// A group: decimal digits are its number (below 2^32 - 1, which chown reads as "unchanged"), anything
// else a name looked up in the group database. Returns false and sets `error` for "", a number out of
// range or a name no group has.
bool parse_group(std::string_view text, std::string_view flag, gid_t& gid, std::string& error);

}  // namespace kroute
