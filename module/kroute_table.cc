// The C interface the nginx glue calls (kroute_table.h): a TableReader per worker, lookups, and the
// balancer's per-worker state (smooth weighted round-robin weights, recently failed endpoints).
#include "kroute_table.h"

#include <array>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "balance.h"
#include "conditions.h"
#include "hashing.h"
#include "path_patterns.h"
#include "policy/proxy_setting.h"
#include "policy/error_pages.h"
#include "policy/external_auth.h"
#include "policy/mirror.h"
#include "policy/affinity.h"
#include "policy/balance.h"
#include "policy/canary.h"
#include "policy/cors.h"
#include "policy/header_modifier.h"
#include "policy/protocol.h"
#include "policy/rate_limit.h"
#include "policy/redirect.h"
#include "policy/server_name.h"
#include "policy/split.h"
#include "policy/template.h"
#include "reader.h"
#include "snapshot.h"
#include "value_patterns.h"

// The C view of the snapshot's records is the snapshot's own layout.
static_assert(sizeof(kroute_policy_t) == sizeof(kroute::format::PolicyRecord));
static_assert(offsetof(kroute_policy_t, a) == offsetof(kroute::format::PolicyRecord, a));
static_assert(offsetof(kroute_policy_t, b) == offsetof(kroute::format::PolicyRecord, b));
static_assert(offsetof(kroute_policy_t, backend) == offsetof(kroute::format::PolicyRecord, backend));
static_assert(offsetof(kroute_policy_t, value) == offsetof(kroute::format::PolicyRecord, value));
static_assert(KROUTE_POLICY_REDIRECT == static_cast<int>(kroute::format::PolicyKind::kRedirect));
static_assert(KROUTE_POLICY_REWRITE == static_cast<int>(kroute::format::PolicyKind::kRewrite));
static_assert(KROUTE_POLICY_UPSTREAM_HOST == static_cast<int>(kroute::format::PolicyKind::kUpstreamHost));
static_assert(KROUTE_POLICY_FORWARDED_PREFIX == static_cast<int>(kroute::format::PolicyKind::kForwardedPrefix));
static_assert(KROUTE_POLICY_PROXY_SETTING == static_cast<int>(kroute::format::PolicyKind::kProxySetting));
static_assert(KROUTE_POLICY_PROTOCOL == static_cast<int>(kroute::format::PolicyKind::kProtocol));
static_assert(KROUTE_POLICY_CANARY == static_cast<int>(kroute::format::PolicyKind::kCanary));
static_assert(KROUTE_POLICY_AFFINITY == static_cast<int>(kroute::format::PolicyKind::kAffinity));
static_assert(KROUTE_POLICY_BALANCE == static_cast<int>(kroute::format::PolicyKind::kBalance));
static_assert(KROUTE_POLICY_ERROR_PAGES == static_cast<int>(kroute::format::PolicyKind::kErrorPages));
static_assert(KROUTE_POLICY_MIRROR == static_cast<int>(kroute::format::PolicyKind::kMirror));
static_assert(KROUTE_POLICY_DENY == static_cast<int>(kroute::format::PolicyKind::kDeny));
static_assert(KROUTE_POLICY_SOURCE_RANGE == static_cast<int>(kroute::format::PolicyKind::kSourceRange));
static_assert(KROUTE_POLICY_BASIC_AUTH == static_cast<int>(kroute::format::PolicyKind::kBasicAuth));
static_assert(KROUTE_POLICY_EXTERNAL_AUTH == static_cast<int>(kroute::format::PolicyKind::kExternalAuth));
static_assert(KROUTE_POLICY_CLIENT_CERT == static_cast<int>(kroute::format::PolicyKind::kClientCert));
static_assert(KROUTE_POLICY_CORS == static_cast<int>(kroute::format::PolicyKind::kCors));
static_assert(KROUTE_POLICY_RATE_LIMIT == static_cast<int>(kroute::format::PolicyKind::kRateLimit));
static_assert(KROUTE_POLICY_BANDWIDTH == static_cast<int>(kroute::format::PolicyKind::kBandwidth));
static_assert(KROUTE_POLICY_SATISFY == static_cast<int>(kroute::format::PolicyKind::kSatisfy));
static_assert(KROUTE_POLICY_SPLIT == static_cast<int>(kroute::format::PolicyKind::kSplit));
static_assert(KROUTE_POLICY_REQUEST_HEADER == static_cast<int>(kroute::format::PolicyKind::kRequestHeader));
static_assert(KROUTE_POLICY_RESPONSE_HEADER == static_cast<int>(kroute::format::PolicyKind::kResponseHeader));
static_assert(KROUTE_POLICY_SERVER_NAME == static_cast<int>(kroute::format::PolicyKind::kServerName));
static_assert(KROUTE_HEADER_SET == kroute::policy::kSetHeader);
static_assert(KROUTE_HEADER_ADD == kroute::policy::kAddHeader);
static_assert(KROUTE_HEADER_REMOVE == kroute::policy::kRemoveHeader);
static_assert(KROUTE_NO_BACKEND == kroute::format::kNone);
static_assert(KROUTE_AUTH_REQUEST == kroute::policy::kAuthRequest);
static_assert(KROUTE_AUTH_SIGNIN == kroute::policy::kAuthSignin);
static_assert(KROUTE_AUTH_RESPONSE_HEADERS == kroute::policy::kAuthResponseHeaders);
static_assert(KROUTE_AUTH_REQUEST_REDIRECT == kroute::policy::kAuthRequestRedirect);
static_assert(KROUTE_AUTH_CACHE == kroute::policy::kAuthCache);
static_assert(KROUTE_AUTH_ALWAYS_SET_COOKIE == kroute::policy::kAuthAlwaysSetCookie);
static_assert(KROUTE_CORS_CREDENTIALS == kroute::policy::kCorsCredentials);
static_assert(KROUTE_CORS_ANY_ORIGIN == kroute::policy::kCorsAnyOrigin);
static_assert(KROUTE_CORS_ANY_DEPTH == kroute::policy::kCorsAnyDepth);
static_assert(KROUTE_CORS_ECHO == kroute::policy::kCorsEcho);
static_assert(KROUTE_RATE_PER_SECOND == kroute::policy::kRequestsPerSecond);
static_assert(KROUTE_RATE_PER_MINUTE == kroute::policy::kRequestsPerMinute);
static_assert(KROUTE_RATE_CONNECTIONS == kroute::policy::kConnections);
static_assert(KROUTE_REDIRECT_ONLY_ROOT == kroute::policy::kOnlyRoot);
static_assert(KROUTE_REDIRECT_ONLY_PLAIN_HTTP == kroute::policy::kOnlyPlainHttp);
static_assert(KROUTE_REDIRECT_TRIM_TRAILING_SLASH == kroute::policy::kTrimTrailingSlash);
static_assert(KROUTE_PROXY_CONNECT_TIMEOUT == static_cast<int>(kroute::policy::ProxySetting::kConnectTimeout));
static_assert(KROUTE_PROXY_READ_TIMEOUT == static_cast<int>(kroute::policy::ProxySetting::kReadTimeout));
static_assert(KROUTE_PROXY_SEND_TIMEOUT == static_cast<int>(kroute::policy::ProxySetting::kSendTimeout));
static_assert(KROUTE_PROXY_NEXT_UPSTREAM == static_cast<int>(kroute::policy::ProxySetting::kNextUpstream));
static_assert(KROUTE_PROXY_NEXT_UPSTREAM_TRIES == static_cast<int>(kroute::policy::ProxySetting::kNextUpstreamTries));
static_assert(KROUTE_PROXY_NEXT_UPSTREAM_TIMEOUT == static_cast<int>(kroute::policy::ProxySetting::kNextUpstreamTimeout));
static_assert(KROUTE_PROXY_BODY_SIZE == static_cast<int>(kroute::policy::ProxySetting::kBodySize));
static_assert(KROUTE_PROXY_BODY_BUFFER_SIZE == static_cast<int>(kroute::policy::ProxySetting::kBodyBufferSize));
static_assert(KROUTE_PROXY_BUFFERING == static_cast<int>(kroute::policy::ProxySetting::kBuffering));
static_assert(KROUTE_PROXY_BUFFER_SIZE == static_cast<int>(kroute::policy::ProxySetting::kBufferSize));
static_assert(KROUTE_PROXY_BUFFERS_NUMBER == static_cast<int>(kroute::policy::ProxySetting::kBuffersNumber));
static_assert(KROUTE_PROXY_REQUEST_BUFFERING == static_cast<int>(kroute::policy::ProxySetting::kRequestBuffering));
static_assert(KROUTE_PROXY_MAX_TEMP_FILE_SIZE == static_cast<int>(kroute::policy::ProxySetting::kMaxTempFileSize));
static_assert(KROUTE_NEXT_ERROR == kroute::policy::kNextError);
static_assert(KROUTE_NEXT_TIMEOUT == kroute::policy::kNextTimeout);
static_assert(KROUTE_NEXT_INVALID_HEADER == kroute::policy::kNextInvalidHeader);
static_assert(KROUTE_NEXT_HTTP_500 == kroute::policy::kNextHttp500);
static_assert(KROUTE_NEXT_HTTP_502 == kroute::policy::kNextHttp502);
static_assert(KROUTE_NEXT_HTTP_503 == kroute::policy::kNextHttp503);
static_assert(KROUTE_NEXT_HTTP_504 == kroute::policy::kNextHttp504);
static_assert(KROUTE_NEXT_HTTP_403 == kroute::policy::kNextHttp403);
static_assert(KROUTE_NEXT_HTTP_404 == kroute::policy::kNextHttp404);
static_assert(KROUTE_NEXT_HTTP_429 == kroute::policy::kNextHttp429);
static_assert(KROUTE_NEXT_NON_IDEMPOTENT == kroute::policy::kNextNonIdempotent);
static_assert(KROUTE_NEXT_OFF == kroute::policy::kNextOff);
static_assert(KROUTE_NEXT_REPEAT == kroute::policy::kNextRepeat);
static_assert(KROUTE_ERROR_PAGES_WHEN_NO_ENDPOINTS == kroute::policy::kWhenNoEndpoints);
static_assert(KROUTE_ERROR_PAGES_ONLY_OWN_ERRORS == kroute::policy::kOnlyOwnErrors);
static_assert(KROUTE_MIRROR_REQUEST_BODY == kroute::policy::kMirrorRequestBody);
static_assert(KROUTE_CANARY_BY_HEADER == kroute::policy::kByHeader);
static_assert(KROUTE_CANARY_BY_COOKIE == kroute::policy::kByCookie);
static_assert(KROUTE_CANARY_BY_WEIGHT == kroute::policy::kByWeight);
static_assert(KROUTE_CANARY_PATTERN == kroute::policy::kPattern);
static_assert(KROUTE_AFFINITY_BALANCED == kroute::policy::kBalanced);
static_assert(KROUTE_AFFINITY_PERSISTENT == kroute::policy::kPersistent);
static_assert(KROUTE_AFFINITY_CHANGE_ON_FAILURE == kroute::policy::kChangeOnFailure);
static_assert(KROUTE_AFFINITY_LEGACY_CANARY == kroute::policy::kLegacyCanary);
static_assert(KROUTE_AFFINITY_SECURE == kroute::policy::kSecure);
static_assert(KROUTE_AFFINITY_CONDITIONAL_SAMESITE_NONE == kroute::policy::kConditionalSameSiteNone);
static_assert(KROUTE_BALANCE_ROUND_ROBIN == kroute::policy::kRoundRobin);
static_assert(KROUTE_BALANCE_EWMA == kroute::policy::kEwma);
static_assert(KROUTE_BALANCE_HASH == kroute::policy::kHash);
static_assert(KROUTE_COOKIE_VALUE_LEN == kroute::kCookieValueLength);
static_assert(KROUTE_PROTOCOL_HTTP == kroute::policy::kHttp);
static_assert(KROUTE_PROTOCOL_HTTPS == kroute::policy::kHttps);
static_assert(KROUTE_PROTOCOL_GRPC == kroute::policy::kGrpc);
static_assert(KROUTE_PROTOCOL_GRPCS == kroute::policy::kGrpcs);
static_assert(KROUTE_PROTOCOL_AUTO_HTTP == kroute::policy::kAutoHttp);
static_assert(KROUTE_PROTOCOL_HTTP10 == kroute::policy::kHttp10);
static_assert(KROUTE_PROTOCOL_VERIFY == kroute::policy::kVerify);
static_assert(KROUTE_PROTOCOL_SERVER_NAME == kroute::policy::kServerName);
static_assert(KROUTE_MAX_CAPTURES == kroute::PathCaptures::kMaxGroups);

namespace {

using kroute::format::EndpointEntry;

// Recently failed endpoints, by address; kept across snapshots because a dead pod stays dead when
// the table changes. A small fixed array: a worker rarely sees more than a few dead peers at once.
constexpr std::size_t kMaxFailed = 64;

struct FailedEndpoint {
  std::uint8_t family = 0;
  std::uint16_t port = 0;
  std::uint8_t address[16] = {};
  std::uint64_t until_ms = 0;
};

bool same_endpoint(const FailedEndpoint& f, std::uint8_t family, const std::uint8_t* address, std::uint16_t port) {
  return f.family == family && f.port == port && std::memcmp(f.address, address, family == 6 ? 16 : 4) == 0;
}

kroute::MappedSnapshot* mapped(kroute_snapshot_t* s) { return reinterpret_cast<kroute::MappedSnapshot*>(s); }
const kroute::MappedSnapshot* mapped(const kroute_snapshot_t* s) {
  return reinterpret_cast<const kroute::MappedSnapshot*>(s);
}

kroute_str_t c_str(std::string_view s) { return {s.size(), reinterpret_cast<const unsigned char*>(s.data())}; }

// The module's request data as lookup reads it: its C callbacks behind RequestData's.
kroute::RequestData request_data(const kroute_request_t* request) {
  kroute::RequestData data;
  data.method = {reinterpret_cast<const char*>(request->method.data), request->method.len};
  data.args = {reinterpret_cast<const char*>(request->args.data), request->args.len};
  data.context = request;
  data.header = [](const void* context, std::string_view name, std::string_view& value) noexcept {
    const auto* r = static_cast<const kroute_request_t*>(context);
    kroute_str_t found{};
    if (r->header == nullptr ||
        r->header(r->data, reinterpret_cast<const unsigned char*>(name.data()), name.size(), &found) == 0)
      return false;
    value = {reinterpret_cast<const char*>(found.data), found.len};
    return true;
  };
  data.scratch = [](const void* context, std::size_t size) noexcept -> char* {
    const auto* r = static_cast<const kroute_request_t*>(context);
    return r->scratch == nullptr ? nullptr : reinterpret_cast<char*>(r->scratch(r->data, size));
  };
  return data;
}

}  // namespace

struct kroute_table_s {
  // Each worker draws its own sequence (session keys must differ between workers).
  explicit kroute_table_s(const char* dir) : reader(dir) {
    std::random_device device;
    random_state = (std::uint64_t{device()} << 32) ^ device() ^ reinterpret_cast<std::uintptr_t>(this);
    if (random_state == 0) random_state = 0x9e3779b97f4a7c15ULL;
  }

  bool failed(const EndpointEntry& e, std::uint64_t now_ms) const noexcept {
    if (now_ms >= failed_until_ms) return false;  // the common case: nothing failed lately
    for (const FailedEndpoint& f : failed_endpoints)
      if (f.until_ms > now_ms && same_endpoint(f, e.family, e.address, e.port)) return true;
    return false;
  }

  // Smooth weighted round-robin state of the current snapshot, one weight per endpoint; rebuilt (once)
  // on the first pick after a new generation. False when that is impossible (no memory).
  bool weights_for(const kroute::MappedSnapshot* snapshot) noexcept {
    if (snapshot != reader.current()) return false;
    const std::uint64_t generation = snapshot->view.generation();
    if (weights_generation == generation) return true;
    try {
      current_weights.assign(snapshot->view.endpoints().size(), 0);
      // EWMA starts over with a new table: ingress-nginx's does too when an endpoint set changes.
      ewma.assign(snapshot->view.endpoints().size(), {});
    } catch (...) {
      current_weights.clear();
      ewma.clear();
      weights_generation = 0;
      return false;
    }
    weights_generation = generation;
    return true;
  }

  std::uint64_t next_random() noexcept {  // xorshift64: a stateless pick for requests on an old snapshot
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return random_state;
  }

  struct Ewma {
    double average_ms = 0;
    std::uint64_t updated_ms = 0;
  };

  kroute::TableReader reader;
  kroute::ValuePatterns value_patterns;
  std::vector<Ewma> ewma;  // per endpoint of the current snapshot, like current_weights
  std::vector<std::int64_t> current_weights;  // int64: weights are u16, endpoints many
  std::uint64_t weights_generation = 0;
  std::array<FailedEndpoint, kMaxFailed> failed_endpoints{};
  std::uint64_t failed_until_ms = 0;  // the latest until_ms of any entry
  std::uint64_t random_state = 0x9e3779b97f4a7c15ULL;
};

namespace {

std::string_view view_of(kroute_str_t s) { return {reinterpret_cast<const char*>(s.data), s.len}; }

kroute::TemplateContext template_context(const kroute_template_ctx_t* c) {
  kroute::TemplateContext t;
  t.scheme = view_of(c->scheme);
  t.host = view_of(c->host);
  t.http_host = view_of(c->http_host);
  t.request_uri = view_of(c->request_uri);
  t.uri = view_of(c->uri);
  t.args = view_of(c->args);
  t.subject = view_of(c->subject);
  t.captures = c->captures;
  t.capture_count = c->capture_count;
  t.trim_trailing_slash = c->trim_trailing_slash != 0;
  t.escape_path = c->escape_path != 0;
  t.prefix_length = c->prefix_length;
  return t;
}

}  // namespace

extern "C" {

kroute_table_t* kroute_table_create(const char* dir) {
  try {
    return new kroute_table_s(dir);
  } catch (...) {
    return nullptr;
  }
}

void kroute_table_destroy(kroute_table_t* table) { delete table; }

kroute_poll_e kroute_table_poll(kroute_table_t* table, std::uint64_t now_ms) {
  return static_cast<kroute_poll_e>(table->reader.poll(now_ms));
}

kroute_poll_e kroute_table_refresh(kroute_table_t* table, std::uint64_t now_ms) {
  return static_cast<kroute_poll_e>(table->reader.refresh(now_ms));
}

kroute_snapshot_t* kroute_table_pin(kroute_table_t* table) {
  return reinterpret_cast<kroute_snapshot_t*>(table->reader.pin());
}

void kroute_table_unpin(kroute_table_t* table, kroute_snapshot_t* snapshot) { table->reader.unpin(mapped(snapshot)); }

std::uint64_t kroute_snapshot_generation(const kroute_snapshot_t* snapshot) {
  return mapped(snapshot)->view.generation();
}

std::uint16_t kroute_snapshot_scope(const kroute_snapshot_t* snapshot, const struct sockaddr* local) {
  const kroute::SnapshotView& view = mapped(snapshot)->view;
  if (view.scopes().empty()) return kroute::kSharedScope;
  static constexpr unsigned char kNoAddress[16] = {};
  if (local != nullptr && local->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(local);
    return view.scope_for(4, reinterpret_cast<const unsigned char*>(&in->sin_addr), ntohs(in->sin_port));
  }
  if (local != nullptr && local->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(local);
    return view.scope_for(6, in6->sin6_addr.s6_addr, ntohs(in6->sin6_port));
  }
  return view.scope_for(0, kNoAddress, 0);  // a UNIX socket: only scopes for any address and port
}

void kroute_snapshot_lookup(const kroute_snapshot_t* snapshot, const unsigned char* host, std::size_t host_len,
                            const unsigned char* path, std::size_t path_len, const kroute_request_t* request,
                            std::uint16_t scope, kroute_route_t* route) {
  const kroute::MappedSnapshot* s = mapped(snapshot);
  const kroute::SnapshotView& view = s->view;
  kroute::PathCaptures captures;
  const kroute::RequestData data = request != nullptr ? request_data(request) : kroute::RequestData{};
  const kroute::RouteMatch m = view.lookup({reinterpret_cast<const char*>(host), host_len},
                                           {reinterpret_cast<const char*>(path), path_len}, s->patterns.get(),
                                           &captures, request != nullptr ? &data : nullptr, scope);
  *route = {};
  route->backend = KROUTE_NO_BACKEND;
  route->strings = reinterpret_cast<const unsigned char*>(view.str({0, 0}).data());
  route->use_forwarded_headers = (view.header().flags & kroute::format::kUseForwardedHeaders) != 0 ? 1 : 0;
  if (m.server != nullptr) {
    const auto records = view.policies(m.server->policies);
    route->host_policies = reinterpret_cast<const kroute_policy_t*>(records.data());
    route->host_policy_count = static_cast<std::uint32_t>(records.size());
  }
  if (m.backend == nullptr) return;
  route->backend = static_cast<std::uint32_t>(m.backend - view.backends().data());
  route->ready = m.backend->ready_count;
  route->default_backend = m.default_backend ? 1 : 0;
  route->service = c_str(view.str(m.backend->service));
  if (m.rule != nullptr) {
    const auto records = view.policies(m.rule->policies);
    route->policies = reinterpret_cast<const kroute_policy_t*>(records.data());
    route->policy_count = static_cast<std::uint32_t>(records.size());
    if ((m.host->flags & kroute::format::kRegexPaths) != 0) {
      route->capture_count = captures.count;
      std::memcpy(route->captures, captures.spans, sizeof captures.spans);
    } else {
      route->prefix_length = m.rule->path.length;  // normalized: "/a" for "/a/", "" for "/"
    }
    const kroute::format::SourceEntry& source = view.source_of(*m.rule);
    route->ns = c_str(view.str(source.ns));
    route->ingress = c_str(view.str(source.name));
  } else {
    route->ns = c_str(view.str(m.backend->ns));
  }
}

int kroute_snapshot_misdirected(const kroute_snapshot_t* snapshot, std::uint16_t scope, const unsigned char* name,
                                std::size_t name_len, const unsigned char* host, std::size_t host_len) {
  return mapped(snapshot)->view.misdirected(scope, {reinterpret_cast<const char*>(name), name_len},
                                            {reinterpret_cast<const char*>(host), host_len})
             ? 1
             : 0;
}

int kroute_server_name_allowed(const kroute_route_t* route, const unsigned char* name, std::size_t len) {
  const std::string_view server_name(reinterpret_cast<const char*>(name), len);
  bool restricted = false;
  for (std::uint32_t i = 0; i < route->host_policy_count; ++i) {
    const kroute_policy_t& record = route->host_policies[i];
    if (record.kind != KROUTE_POLICY_SERVER_NAME) continue;
    restricted = true;
    if (kroute::policy::server_name_matches(view_of(kroute_policy_str(route, record.a)), server_name)) return 1;
  }
  return restricted ? 0 : 1;
}

int kroute_snapshot_backend(const kroute_snapshot_t* snapshot, std::uint32_t backend, kroute_backend_t* info) {
  const kroute::SnapshotView& view = mapped(snapshot)->view;
  const auto backends = view.backends();
  if (backend >= backends.size()) return -1;
  const kroute::format::BackendEntry& b = backends[backend];
  info->ready = b.ready_count;
  info->ns = c_str(view.str(b.ns));
  info->service = c_str(view.str(b.service));
  return 0;
}

std::uint64_t kroute_policy_fingerprint(const kroute_route_t* route, const kroute_policy_t* record) {
  const kroute_str_t a = kroute_policy_str(route, record->a);
  const kroute_str_t b = kroute_policy_str(route, record->b);
  const std::uint64_t numbers[3] = {record->code, record->flags, record->value};
  return kroute::payload_checksum(numbers, sizeof numbers) ^ kroute::payload_checksum(a.data, a.len) * 31 ^
         kroute::payload_checksum(b.data, b.len) * 131;
}

std::size_t kroute_template_length(kroute_str_t text, const kroute_template_ctx_t* ctx) {
  return kroute::template_length(view_of(text), template_context(ctx));
}

unsigned char* kroute_template_expand(kroute_str_t text, const kroute_template_ctx_t* ctx, unsigned char* out,
                                      std::size_t* query) {
  return reinterpret_cast<unsigned char*>(
      kroute::expand_template(view_of(text), template_context(ctx), reinterpret_cast<char*>(out), query));
}

int kroute_table_pick(kroute_table_t* table, const kroute_snapshot_t* snapshot, std::uint32_t backend,
                      const std::uint8_t* tried, std::uint64_t now_ms, kroute_endpoint_t* endpoint) {
  return kroute_table_pick_by(table, snapshot, backend, tried, now_ms, KROUTE_BALANCE_ROUND_ROBIN, 0, endpoint);
}

int kroute_table_pick_by(kroute_table_t* table, const kroute_snapshot_t* snapshot, std::uint32_t backend,
                         const std::uint8_t* tried, std::uint64_t now_ms, unsigned method, std::uint64_t key,
                         kroute_endpoint_t* endpoint) {
  const kroute::MappedSnapshot* s = mapped(snapshot);
  const auto backends = s->view.backends();
  if (backend >= backends.size()) return -1;
  const kroute::format::BackendEntry& b = backends[backend];
  const auto ready = s->view.ready_endpoints_of(b);
  const bool stateful = table->weights_for(s);
  std::int64_t* weights = stateful ? table->current_weights.data() + b.first_endpoint : nullptr;
  const kroute_table_s::Ewma* ewma = stateful ? table->ewma.data() + b.first_endpoint : nullptr;

  // First pass skips recently failed endpoints; the second takes them when nothing else is left. A
  // session's own endpoint is taken even when failed lately: the session is not moved by a guess.
  for (int pass = 0; pass < 2; ++pass) {
    const bool skip_failed = pass == 0 && method != KROUTE_PICK_ENDPOINT;
    const auto skip = [&](std::size_t i) {
      return (tried != nullptr && (tried[i / 8] & (1u << (i % 8))) != 0) ||
             (skip_failed && table->failed(ready[i], now_ms));
    };
    std::size_t best = kroute::kNoPick;
    switch (method) {
      case KROUTE_PICK_ENDPOINT: best = kroute::find_endpoint(ready, key, skip); break;
      case KROUTE_BALANCE_HASH: best = kroute::pick_hashed(ready, key, skip); break;
      case KROUTE_BALANCE_EWMA:
        if (ewma != nullptr) {
          best = kroute::pick_two_choices(
              ready, table->next_random(),
              [&](std::size_t i) {
                const auto& e = ewma[i];
                return e.updated_ms == 0 ? 0.0 : kroute::ewma_update(e.average_ms, 0, now_ms - e.updated_ms);
              },
              skip);
          break;
        }
        [[fallthrough]];
      default: best = kroute::pick_endpoint(ready, weights, table->next_random(), skip); break;
    }
    if (best == kroute::kNoPick) {
      if (method == KROUTE_PICK_ENDPOINT) return -1;
      continue;
    }
    const EndpointEntry& e = ready[best];
    endpoint->family = e.family;
    std::memcpy(endpoint->address, e.address, sizeof endpoint->address);
    endpoint->port = e.port;
    endpoint->index = static_cast<std::uint32_t>(best);
    endpoint->id = kroute::endpoint_id(e);
    return 0;
  }
  return -1;
}

void kroute_table_observe(kroute_table_t* table, const kroute_snapshot_t* snapshot, std::uint32_t backend,
                          const kroute_endpoint_t* endpoint, std::uint64_t response_ms, std::uint64_t now_ms) {
  const kroute::MappedSnapshot* s = mapped(snapshot);
  const auto backends = s->view.backends();
  if (backend >= backends.size() || !table->weights_for(s)) return;
  const std::size_t i = backends[backend].first_endpoint + endpoint->index;
  if (i >= table->ewma.size()) return;
  kroute_table_s::Ewma& e = table->ewma[i];
  const double sample = static_cast<double>(response_ms);
  e.average_ms = e.updated_ms == 0 ? sample : kroute::ewma_update(e.average_ms, sample, now_ms - e.updated_ms);
  e.updated_ms = now_ms == 0 ? 1 : now_ms;
}

std::uint64_t kroute_table_random(kroute_table_t* table) { return table->next_random(); }

int kroute_same_site_none_compatible(kroute_str_t user_agent) {
  return kroute::policy::same_site_none_compatible(view_of(user_agent)) ? 1 : 0;
}

int kroute_table_match_value(kroute_table_t* table, kroute_str_t pattern, kroute_str_t value) {
  return table->value_patterns.matches(view_of(pattern), view_of(value)) ? 1 : 0;
}

std::uint64_t kroute_hash(const unsigned char* data, std::size_t len) {
  return kroute::key_hash({reinterpret_cast<const char*>(data), len});
}

int kroute_canary_keyword(kroute_str_t value) {
  switch (kroute::policy::canary_by_keyword(view_of(value))) {
    case kroute::policy::CanaryVerdict::kCanary: return 1;
    case kroute::policy::CanaryVerdict::kPrimary: return 0;
    case kroute::policy::CanaryVerdict::kUndecided: break;
  }
  return -1;
}

int kroute_canary_weight(std::uint64_t value, std::uint64_t random) {
  return kroute::policy::canary_by_weight_draw(value, random) ? 1 : 0;
}

int kroute_split_pick(const kroute_policy_t* policies, std::uint32_t count, std::uint64_t random) {
  const std::size_t i = kroute::policy::pick_split(
      {reinterpret_cast<const kroute::format::PolicyRecord*>(policies), count}, random);
  return i == kroute::policy::kNoShare ? -1 : static_cast<int>(i);
}

void kroute_cookie_value_format(std::uint64_t number, unsigned char* out) {
  kroute::format_cookie_value(number, reinterpret_cast<char*>(out));
}

int kroute_cookie_value_parse(const unsigned char* data, std::size_t len, std::uint64_t* number) {
  return kroute::parse_cookie_value({reinterpret_cast<const char*>(data), len}, *number) ? 0 : -1;
}

void kroute_table_mark_failed(kroute_table_t* table, const kroute_endpoint_t* endpoint, std::uint64_t until_ms) {
  FailedEndpoint* slot = nullptr;
  for (FailedEndpoint& f : table->failed_endpoints) {
    if (same_endpoint(f, endpoint->family, endpoint->address, endpoint->port)) {
      slot = &f;
      break;
    }
    if (slot == nullptr || f.until_ms < slot->until_ms) slot = &f;  // else the one that expires first
  }
  slot->family = endpoint->family;
  slot->port = endpoint->port;
  std::memcpy(slot->address, endpoint->address, sizeof slot->address);
  slot->until_ms = until_ms;
  if (until_ms > table->failed_until_ms) table->failed_until_ms = until_ms;
}

void kroute_table_stats(const kroute_table_t* table, kroute_table_stats_t* stats) {
  *stats = {};
  stats->pickups = table->reader.pickups();
  stats->rejections = table->reader.rejections();
  stats->regex_limit_hits = table->reader.regex_limit_hits();
  const kroute::MappedSnapshot* current = table->reader.current();
  if (current == nullptr) return;
  const kroute::SnapshotView& view = current->view;
  stats->generation = view.generation();
  stats->built_unix_ms = view.header().built_unix_ms;
  stats->hosts = view.hosts().size();
  stats->routes = view.rules().size();
  stats->backends = view.backends().size();
  stats->endpoints = view.endpoints().size();
}

std::size_t kroute_table_last_error(const kroute_table_t* table, unsigned char* buf, std::size_t size) {
  const std::string& error = table->reader.last_error();
  const std::size_t n = error.size() < size ? error.size() : size;
  std::memcpy(buf, error.data(), n);
  return n;
}

}  // extern "C"
