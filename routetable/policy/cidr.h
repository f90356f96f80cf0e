// Client address ranges as the access records carry them (kSourceRange, and the rate limits' exempt
// list): a packed string of kCidrSize-byte entries, {family (4 or 6), prefix length, 16 address bytes
// (an IPv4 address in the first 4), host bits zero}, so the module matches a client with no parsing and
// no allocation (kroute_cidr_match in module/kroute_table.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kroute::policy {

inline constexpr std::size_t kCidrSize = 18;
// More ranges than this in one list are refused (a list is scanned per request).
inline constexpr std::size_t kMaxCidrs = 1024;

// Reads a comma-separated list of CIDRs or bare addresses ("10.0.0.0/8, 192.168.1.1, 2001:db8::/32"),
// as ingress-nginx's *-source-range annotations take them: host bits are cleared (Go's ParseCIDR), blanks
// and empty items are skipped. Appends to `packed`; "" or why the list is refused (naming the entry).
std::string parse_cidr_list(std::string_view list, std::string& packed);

// "" when `packed` is a well-formed packed list; else what is wrong with it.
std::string check_cidr_list(std::string_view packed);

// "10.0.0.0/8,2001:db8::/32": a packed list as text, for kroute-table.
std::string cidr_list_text(std::string_view packed);

}  // namespace kroute::policy
