// The snapshot file layout: the byte-level contract between the agent (writer) and nginx (reader).
// Offsets, never pointers; fixed-width little-endian integers; every section 8-byte aligned.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace kroute::format {

static_assert(std::endian::native == std::endian::little,
              "snapshots are little-endian and read in place; big-endian hosts are not supported");

inline constexpr std::uint64_t kMagic = 0x31454c4241544b52ULL;  // "RKTABLE1" read as little-endian bytes
inline constexpr std::uint32_t kVersion = 8;  // 3: policy records, host flags (regex paths); 4: records name a backend, carry a number; 5: access kinds, client-certificate CAs per TLS entry; 6: match conditions and rule chains, split and header-modifier kinds; 7: scopes (a host's scope, the scopes section), the server-name kind; 8: a scope's HTTPS listener names (the listener-names section), a source's kind
inline constexpr std::uint32_t kNone = 0xffffffffu;  // "no index" in any u32 index field
inline constexpr std::size_t kAlign = 8;
// Limits that keep a hostile or broken snapshot from making lookups slow or huge.
inline constexpr std::uint64_t kMaxSnapshotBytes = 1ULL << 30;
inline constexpr std::size_t kMaxHostLength = 253;
inline constexpr std::size_t kMaxPathLength = 4096;
// Host and rule entries carry the first bytes of their name or path, so a lookup compares a short key
// without a cache miss into the string pool; both sections start on a cache line, one entry per line.
inline constexpr std::size_t kInlineKey = 20;
inline constexpr std::size_t kEntryAlign = 64;

// Sections, in file order. The header holds one descriptor per section.
enum Section : std::uint32_t {
  kStrings = 0,     // bytes: every string, referenced by StrRef
  kHosts,           // HostEntry[]
  kHostSlots,       // u32[] open-addressing table over exact hosts: host index + 1, 0 = empty
  kWildcardSlots,   // u32[] same, over wildcard hosts keyed by their suffix (after "*.")
  kRules,           // RuleEntry[], grouped by host, in precedence order within a host
  kPathSlots,       // u32[] open-addressing table over rules keyed by (host, match kind, path)
  kBackends,        // BackendEntry[]
  kEndpoints,       // EndpointEntry[], grouped by backend, ready ones first
  kSources,         // SourceEntry[]: the Ingresses and routes rules come from
  kTls,             // TlsEntry[]: certificate references per host
  kPolicySets,      // PolicySet[]: a rule's or a host's records, a range of kPolicyRecords
  kPolicyRecords,   // PolicyRecord[]: what a route does besides choosing a backend (routetable/policy/)
  kConditions,      // ConditionEntry[]: what a request must have besides host and path, grouped by rule
  kRuleConditions,  // ConditionRange[]: one per rule (its conditions), or none when no rule has any
  kScopes,          // ScopeEntry[]: one per (scope, local address), scope 1's first; none without scopes
  kListenerNames,   // StrRef[]: the hostnames of the scopes' HTTPS listeners, a range per scope
  kSectionCount
};

struct SectionRef {
  std::uint64_t offset;  // from the start of the file
  std::uint64_t count;   // elements (bytes for kStrings)
};

struct Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint64_t generation;     // stamped by the publisher; equals the N of table.N
  std::uint64_t total_size;     // the whole file
  std::uint64_t checksum;       // XXH3-64 over bytes [header_size, total_size)
  std::uint64_t built_unix_ms;  // when the builder made it, for "snapshot age"
  std::uint32_t any_host;       // host index of the shared scope's host-less rules, or kNone
  std::uint32_t default_backend;  // backend index, or kNone
  std::uint32_t default_tls;      // TlsEntry index of the default certificate, or kNone
  std::uint32_t flags;            // TableFlags
  SectionRef sections[kSectionCount];
};

// kUseForwardedHeaders: the X-Forwarded-Proto a request carries is its scheme (the cluster's proxy in
// front of nginx ended TLS), as ingress-nginx's use-forwarded-headers.
// kAnyDepthHosts: some wildcard host has kAnyDepth, so a lookup that found no one-label wildcard strips
// further labels (tables without any cost nothing more).
enum TableFlags : std::uint32_t { kUseForwardedHeaders = 1, kAnyDepthHosts = 2 };

struct StrRef {
  std::uint32_t offset;
  std::uint32_t length;
};

enum class HostKind : std::uint8_t { kExact = 0, kWildcard = 1, kAny = 2 };

// kRegexPaths: every rule path of the host is a case-insensitive regular expression anchored at the
// start, tried in the host's rule order (ingress-nginx's use-regex / rewrite-target, host-wide).
// kAnyDepth: a wildcard host that matches any number of labels before its suffix (the Gateway API's
// `*.example.com` covers a.b.example.com too); other wildcards match one label, as Ingress wildcards do.
// kIsolated: when none of the host's rules matches, the lookup ends there (no wildcard, no host-less rules):
// a Gateway API listener serves only the routes attached to it (Rule::isolated).
enum HostFlags : std::uint8_t { kRegexPaths = 1, kAnyDepth = 2, kIsolated = 4 };

struct HostEntry {
  StrRef name;                   // "a.example.com"; for wildcards the suffix "example.com"; "" for any
  std::uint64_t hash;            // host_hash(name, scope), as used in the slot tables
  HostKind kind;
  std::uint8_t flags;            // HostFlags
  std::uint16_t scope;           // the scope whose lookups find it (model.h's ScopeId); 0: the shared scope
  std::uint32_t first_rule;
  std::uint32_t rule_count;
  std::uint32_t tls;             // TlsEntry index or kNone
  std::uint32_t max_prefix_length;  // longest Prefix rule path of this host, to bound lookups
  std::uint32_t max_exact_length;   // longest Exact rule path; 0: the host has no Exact rule
  std::uint32_t policies;           // PolicySet index of host-wide records, or kNone
  char key[kInlineKey];             // the first bytes of name, zero-padded
};

enum class Match : std::uint8_t { kExact = 0, kPrefix = 1 };
// The pathType as the Ingress declared it (ImplementationSpecific matches as Prefix).
enum class DeclaredType : std::uint8_t { kExact = 0, kPrefix = 1, kImplementationSpecific = 2 };

// kHasConditions: the rule matches only when its conditions hold (kRuleConditions[rule]).
// kChainNext: the next rule has the same host, match and path (other conditions) and is tried when this
// one's conditions fail. Such rules are stored consecutively in precedence order; the path slots point to
// the first. A rule with neither flag (every Ingress rule) costs a lookup one test of `flags`.
enum RuleFlags : std::uint16_t { kHasConditions = 1, kChainNext = 2 };

struct RuleEntry {
  // normalized: Prefix paths without trailing slashes, "/" as ""; on a kRegexPaths host the pattern
  StrRef path;
  std::uint64_t hash;            // path_hash(hosts[host].hash, match, path)
  std::uint32_t host;
  Match match;
  DeclaredType declared;
  std::uint16_t flags;           // RuleFlags
  StrRef declared_path;          // the path as written in the Ingress, for dump and logs
  std::uint32_t backend;
  std::uint32_t source;
  std::uint32_t policies;        // PolicySet index, or kNone: the rule only chooses its backend
  char key[kInlineKey];          // the first bytes of path, zero-padded
};

struct BackendEntry {
  StrRef ns;
  StrRef service;
  StrRef port_name;              // "" when the Ingress named the port by number
  std::uint32_t port;            // 0 when named
  std::uint32_t first_endpoint;
  std::uint32_t endpoint_count;
  std::uint32_t ready_count;     // the first ready_count endpoints are ready
};

enum EndpointFlags : std::uint8_t { kReady = 1, kServing = 2, kTerminating = 4 };

struct EndpointEntry {
  std::uint8_t family;           // 4 or 6
  std::uint8_t flags;            // EndpointFlags
  std::uint16_t port;
  std::uint16_t weight;
  std::uint16_t reserved;
  std::uint8_t address[16];      // network byte order; IPv4 uses the first 4 bytes
};

struct SourceEntry {
  StrRef ns;
  StrRef name;
  std::int64_t created_unix;     // creationTimestamp, seconds
  StrRef kind;                   // "" for an Ingress; "HTTPRoute" for a Gateway API route (format 8)
};

// A host's certificate. The PEM text lives in the string pool (identical PEMs are stored once); the
// fingerprint (XXH3 of chain and key) keys the module's cache of parsed certificates, so a rotated
// Secret is parsed anew on the next handshake.
struct TlsEntry {
  StrRef host;         // as in the Ingress ("*.example.com" for a wildcard); "" for the default
  StrRef secret_ns;
  StrRef secret_name;
  StrRef chain_pem;    // empty: a reference without a usable certificate
  StrRef key_pem;
  std::uint64_t fingerprint;
  std::uint32_t source;  // SourceEntry index; kNone for the default certificate
  std::uint32_t reserved;
};

// Where the connections of a scope arrive (model.h's Scope and LocalAddress): one entry per local address
// of each scope, in the model's order (so by scope). A connection belongs to the scope of the first entry
// whose address and port both match its local address and port (SnapshotView::scope_for). Every entry of
// one scope names the same host-less host, default certificate and name.
struct ScopeEntry {
  std::uint8_t family;           // 0: any address; 4 or 6
  std::uint8_t reserved;
  std::uint16_t port;            // 0: any port
  std::uint16_t scope;           // 1, 2, ...: RouteModel::scopes[scope - 1]
  std::uint16_t reserved2;
  std::uint8_t address[16];      // network byte order; IPv4 uses the first 4 bytes; all zero for any
  std::uint32_t any_host;        // host index of the scope's host-less rules, or kNone
  std::uint32_t default_tls;     // TlsEntry index of the scope's default certificate, or kNone
  StrRef name;                   // for dump and logs
  // The scope's HTTPS listener names (model.h's Scope::listener_names): a range of kListenerNames, each
  // "" (a listener without hostname), a host name or a "*." wildcard, lowercase. Empty: no 421 check.
  std::uint32_t first_listener_name;
  std::uint32_t listener_name_count;
};

// A match condition (model.h's MatchCondition). Header names are stored lowercase; the module compares
// them case-insensitively anyway. Regex values are compiled once per snapshot (path_patterns.h).
enum class ConditionKind : std::uint8_t { kMethod = 0, kHeaderExact = 1, kHeaderRegex = 2, kQueryExact = 3, kQueryRegex = 4 };

struct ConditionEntry {
  StrRef name;                   // header or query parameter name; "" for kMethod
  StrRef value;                  // the method, the exact value, or the pattern
  ConditionKind kind;
  std::uint8_t reserved[7];
};

// A rule's conditions: a range of kConditions.
struct ConditionRange {
  std::uint32_t first;
  std::uint32_t count;
};

// Policy records: what a rule (or a whole host) does besides choosing a backend: redirects, rewrites,
// headers, and with later features splits, access checks, limits. Every kind is one file in
// routetable/policy/ that says what `code`, `flags`, `a` and `b` mean for it and checks them; the module
// applies each kind in the nginx phase where nginx itself would do that work. A rule or host names one
// PolicySet: a range of records in the order they apply. Identical sets are stored once.
enum class PolicyKind : std::uint16_t {
  kRedirect = 1,        // answer with `code` and a Location made from template `a` (policy/redirect.h)
  kRewrite = 2,         // the upstream URI is template `a` (policy/rewrite.h)
  kUpstreamHost = 3,    // the Host header sent upstream is `a` (policy/headers.h)
  kForwardedPrefix = 4, // X-Forwarded-Prefix sent upstream is `a` (policy/headers.h)
  kProxySetting = 5,    // one location-wide proxy setting (`code`) set to `value` (policy/proxy_setting.h)
  kProtocol = 6,        // how nginx talks to the backend: HTTPS, gRPC, HTTP/1.0, upstream TLS (policy/protocol.h)
  kCanary = 7,          // some requests go to `backend` instead, by header, cookie or weight (policy/canary.h)
  kAffinity = 8,        // session affinity by cookie for `backend` (policy/affinity.h)
  kBalance = 9,         // how an endpoint is chosen: round robin, EWMA, consistent hash (policy/balance.h)
  kErrorPages = 10,     // `backend` answers some statuses, or when the rule has no endpoints (policy/error_pages.h)
  kMirror = 11,         // a copy of each request goes to URL `a`, its answer ignored (policy/mirror.h)
  // Who may pass (issue 19). They fail closed: what the agent cannot apply becomes a kDeny record.
  kDeny = 12,           // the rule answers `code` (503) and nothing else: an access policy it cannot apply (policy/deny.h)
  kSourceRange = 13,    // client addresses allowed or denied, CIDR ranges (policy/source_range.h)
  kBasicAuth = 14,      // HTTP basic authentication against htpasswd entries (policy/basic_auth.h)
  kExternalAuth = 15,   // a subrequest to an auth service decides (policy/external_auth.h)
  kClientCert = 16,     // what the client's TLS certificate must be, and what goes upstream of it (policy/client_cert.h)
  kCors = 17,           // CORS preflight answers and response headers (policy/cors.h)
  kRateLimit = 18,      // requests per second or minute, connections, per client address (policy/rate_limit.h)
  kBandwidth = 19,      // the response's bytes per second, after a first part (policy/rate_limit.h)
  kSatisfy = 20,        // the access phase passes when any one access check passes: satisfy any (policy/satisfy.h)
  // Gateway API HTTPRoute (issue 21).
  kSplit = 21,          // one weighted share of the rule's requests goes to `backend` (policy/split.h)
  kRequestHeader = 22,  // set, add or remove a request header before proxying (policy/header_modifier.h)
  kResponseHeader = 23, // set, add or remove a response header (policy/header_modifier.h)
  kServerName = 24,     // host-wide: a TLS request's SNI must fall under one of the host's patterns, else 404 (policy/server_name.h)
};

// `backend`: for kinds that send requests to a backend of their own (a canary, an error backend), its
// BackendEntry index; kNone otherwise. `value`: a number whose meaning the kind defines (a timeout in
// milliseconds, a size in bytes, a weight).
struct PolicyRecord {
  PolicyKind kind;
  std::uint16_t code;
  std::uint32_t flags;
  std::uint32_t backend;
  std::uint32_t reserved;
  std::uint64_t value;
  StrRef a;
  StrRef b;
};

struct PolicySet {
  std::uint32_t first;   // index into kPolicyRecords
  std::uint32_t count;
};

static_assert(sizeof(SectionRef) == 16);
static_assert(sizeof(Header) == 64 + 16 * kSectionCount);
static_assert(sizeof(StrRef) == 8);
static_assert(sizeof(HostEntry) == kEntryAlign);
static_assert(sizeof(RuleEntry) == kEntryAlign);
static_assert(sizeof(BackendEntry) == 40);
static_assert(sizeof(EndpointEntry) == 24);
static_assert(sizeof(SourceEntry) == 32);
static_assert(sizeof(TlsEntry) == 56);
static_assert(sizeof(PolicyRecord) == 40);
static_assert(sizeof(PolicySet) == 8);
static_assert(sizeof(ConditionEntry) == 24);
static_assert(sizeof(ConditionRange) == 8);
static_assert(sizeof(ScopeEntry) == 48);

}  // namespace kroute::format
