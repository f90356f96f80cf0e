// libFuzzer target: snapshot validation, then lookups over whatever validated. Half of the inputs get
// their checksum and size repaired first, so the structural checks behind the checksum are fuzzed too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "balance.h"
#include "conditions.h"
#include "format.h"
#include "hashing.h"
#include "path_patterns.h"
#include "policy/split.h"
#include "policy/template.h"
#include "snapshot.h"

namespace {

// Touch everything a reader of a valid snapshot may touch.
void walk(const kroute::SnapshotView& view) {
  std::size_t sink = 0;
  for (const auto& host : view.hosts()) {
    sink += view.str(host.name).size();
    for (const auto& rule : view.rules().subspan(host.first_rule, host.rule_count)) {
      sink += view.str(rule.path).size() + view.str(rule.declared_path).size();
      const auto& backend = view.backends()[rule.backend];
      sink += view.str(backend.service).size() + view.endpoints_of(backend).size();
      for (const auto& e : view.ready_endpoints_of(backend)) sink += e.port;
      // The balancer's choice in both of its modes: whatever validated, no pick divides by zero.
      const auto ready = view.ready_endpoints_of(backend);
      std::vector<std::int64_t> current(ready.size(), 0);
      for (std::uint64_t random : {0ULL, 7ULL}) {
        sink += kroute::pick_endpoint(ready, current.data(), random, [](std::size_t) { return false; });
        sink += kroute::pick_endpoint(ready, nullptr, random, [](std::size_t i) { return i == 0; });
      }
      sink += view.str(view.source_of(rule).name).size();
    }
    if (host.tls != kroute::format::kNone) sink += view.str(view.tls()[host.tls].secret_name).size();
  }
  if (const auto* fallback = view.default_backend()) sink += fallback->ready_count;
  for (const auto& tls : view.tls()) sink += view.str(tls.chain_pem).size() + view.str(tls.key_pem).size();
  static volatile std::size_t keep;
  keep = sink;
}

// A request for rules with match conditions: every header has the same value, query and method fixed, and
// scratch memory as a reader's caller gives it.
struct FuzzRequest {
  std::vector<std::vector<char>> scratch;
  kroute::RequestData data() {
    kroute::RequestData d;
    d.method = "GET";
    d.args = "q=a%20b&id=12&version=one&x";
    d.context = this;
    d.header = [](const void*, std::string_view, std::string_view& value) noexcept {
      value = "v1";
      return true;
    };
    d.scratch = [](const void* context, std::size_t size) noexcept -> char* {
      auto* self = const_cast<FuzzRequest*>(static_cast<const FuzzRequest*>(context));
      return self->scratch.emplace_back(size).data();
    };
    return d;
  }
};

void touch_certificate(const kroute::SnapshotView& view, const kroute::format::TlsEntry& entry) {
  static volatile std::size_t keep;
  keep = view.str(entry.chain_pem).size() + view.str(entry.key_pem).size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first byte chooses the mode and is not part of the snapshot.
  if (size < 1) return 0;
  const bool repair = (data[0] & 1) != 0;
  std::vector<std::uint64_t> aligned((size - 1 + 7) / 8 + 1);
  auto* bytes = reinterpret_cast<std::byte*>(aligned.data());
  std::memcpy(bytes, data + 1, size - 1);
  const std::size_t length = size - 1;
  if (repair && length >= sizeof(kroute::format::Header)) {
    auto* header = reinterpret_cast<kroute::format::Header*>(bytes);
    header->total_size = length;
    header->header_size = sizeof(kroute::format::Header);
    header->checksum = kroute::payload_checksum(bytes + sizeof *header, length - sizeof *header);
  }
  kroute::SnapshotView view;
  if (!kroute::SnapshotView::open({bytes, length}, view).ok) return 0;
  walk(view);
  // Regex paths as the reader compiles them, matched with captures; every record's template expanded
  // with those captures (sized first, as the module does).
  kroute::PatternCache cache;
  const kroute::PathPatterns patterns(view, cache);
  FuzzRequest fuzz_request;
  const kroute::RequestData request = fuzz_request.data();
  // Every rule's records as the split module reads them: a pick is one of its own records, or none.
  for (const auto& rule : view.rules()) {
    const auto records = view.policies(rule.policies);
    const std::size_t pick = kroute::policy::pick_split(records, 12345);
    if (pick != kroute::policy::kNoShare && records[pick].kind != kroute::format::PolicyKind::kSplit) __builtin_trap();
  }
  for (const auto& host : view.hosts()) {
    const std::string_view name = view.str(host.name);
    for (const auto& rule : view.rules().subspan(host.first_rule, host.rule_count)) {
      kroute::PathCaptures captures;
      const std::string_view path = view.str(rule.declared_path);
      const kroute::RouteMatch m = view.lookup(name, path, &patterns, &captures, &request);
      kroute::TemplateContext context;
      context.scheme = "http";
      context.host = name;
      context.request_uri = path;
      context.uri = path;
      context.subject = path;
      context.captures = captures.spans;
      context.capture_count = m.rule != nullptr ? captures.count : 0;
      for (const auto& record : view.policy_records()) {
        std::string out(kroute::template_length(view.str(record.a), context), '\0');
        if (kroute::expand_template(view.str(record.a), context, out.data()) != out.data() + out.size()) __builtin_trap();
      }
    }
  }
  // Hosts and paths from the snapshot's own strings, plus fixed shapes that reach every branch.
  static constexpr std::string_view kHosts[] = {"a.com", "x.a.com", "A.COM:8080", "[::1]:80", "", "a.com."};
  static constexpr std::string_view kPaths[] = {"/", "/a", "/a/b/", "//", "/a?b", "", "x"};
  for (std::string_view host : kHosts) {
    for (std::string_view path : kPaths) {
      (void)view.lookup(host, path);
      (void)view.lookup(host, path, &patterns, nullptr, &request);
    }
    (void)view.certificate_for(host);
  }
  // The first few scopes the table names, found from their own entries' addresses, and one it does not
  // have (a few: hosts times scopes must not make one input take seconds).
  std::size_t scopes_tried = 0;
  for (const auto& entry : view.scopes()) {
    if (&entry != view.scopes().data() && (&entry)[-1].scope == entry.scope) continue;
    if (++scopes_tried > 4) break;
    const kroute::ScopeId scope = view.scope_for(entry.family, entry.address, entry.port);
    for (kroute::ScopeId s : {scope, entry.scope, static_cast<kroute::ScopeId>(entry.scope + 1)}) {
      for (std::string_view host : kHosts) {
        (void)view.lookup(host, "/", &patterns, nullptr, &request, s);
        (void)view.certificate_for(host, s);
      }
      for (const auto& host : view.hosts()) {
        kroute::HostMatch how;
        (void)view.lookup(view.str(host.name), "/a", &patterns, nullptr, &request, s);
        (void)view.find_host(view.str(host.name), how, s);
        (void)view.certificate_for(view.str(host.name), s);
        (void)view.misdirected(s, view.str(host.name), "a.com");
      }
      // A scope's listener names as SNI against fixed hosts (the first few: each check reads them all).
      for (const auto& name : view.listener_names(s).first(std::min<std::size_t>(view.listener_names(s).size(), 8))) {
        for (std::string_view host : kHosts) (void)view.misdirected(s, view.str(name), host);
      }
      if (const auto* own = view.scope_certificate(s)) touch_certificate(view, *own);
    }
    (void)view.str(entry.name).size();
  }
  static constexpr unsigned char kAddress[16] = {10, 0, 0, 7};
  (void)view.scope_for(4, kAddress, 80);
  (void)view.scope_for(6, kAddress, 0);
  (void)view.scope_for(0, kAddress, 8443);
  for (const auto& host : view.hosts()) {
    const std::string_view name = view.str(host.name);
    (void)view.lookup(name, "/", nullptr, nullptr, nullptr, host.scope);
    (void)view.lookup(name, "/");
    (void)view.lookup(name, "/", &patterns, nullptr, &request);
    for (const auto& rule : view.rules().subspan(host.first_rule, host.rule_count)) {
      (void)view.lookup(name, view.str(rule.declared_path));
      (void)view.lookup(name, view.str(rule.declared_path), &patterns, nullptr, &request);
      for (const auto& condition : view.conditions_of(rule)) (void)view.str(condition.name).size();
    }
    kroute::HostMatch how;
    (void)view.find_host(name, how);
    (void)view.certificate_for(name);
  }
  return 0;
}
