// libFuzzer target: Kubernetes objects as the agent reads them. Bytes -> JSON (the agent's reader) ->
// the Store's projections -> compile() -> build_snapshot() -> SnapshotView::open() -> lookups.
//
// Input: one mode byte, then JSON: one object or an array of them (also read as one watch event line). An element shaped like a watch event
// ({"type": "DELETED", "object": {...}}) is applied with that type, others as ADDED; an object's "kind"
// picks the projection, else the mode byte does. Mode bits 0-2: that kind; bit 3: Ingresses without a
// class are ours; bit 4: a default certificate Secret "default/tls"; bit 5: the objects arrive in a
// LIST instead of as events; bit 6: every later change is compiled as it lands; bit 7: the Gateway API
// (GatewayClass, Gateway, HTTPRoute, ReferenceGrant, Namespace) is served too, in address slots with bit 0.
//
// What must hold for every input, beyond "no crash, leak or undefined behaviour":
// - the compiler's incremental result (a CompileCache fed as the agent feeds it) equals a fresh compile,
//   and a compile that reports no change gives the table of the compile before;
// - the builder's snapshot opens, and every string of it that nginx puts into variables, logs or
//   headers is free of control characters and valid UTF-8;
// - every Ingress rule of an exact host that the builder kept is found again by lookup(host, its path), with
//   its backend; every kept TLS host with a certificate gets that certificate.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "compiler.h"
#include "kube/watch_event.h"
#include "log.h"
#include "path_patterns.h"
#include "snapshot.h"
#include "store.h"
#include "validate.h"

namespace {

using kroute::agent::Kind;
using kroute::agent::kube::EventType;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz-objects: %s\n", what.c_str());
  std::abort();
}

bool kind_named(const Json::Value& object, Kind& kind) {
  if (!object.isObject() || !object["kind"].isString()) return false;
  static const std::pair<std::string_view, Kind> kNames[] = {{"Ingress", Kind::kIngress},
                                                             {"IngressClass", Kind::kIngressClass},
                                                             {"Service", Kind::kService},
                                                             {"EndpointSlice", Kind::kEndpointSlice},
                                                             {"Secret", Kind::kSecret},
                                                             {"GatewayClass", Kind::kGatewayClass},
                                                             {"Gateway", Kind::kGateway},
                                                             {"HTTPRoute", Kind::kHTTPRoute},
                                                             {"ReferenceGrant", Kind::kReferenceGrant},
                                                             {"Namespace", Kind::kNamespace}};
  const std::string name = object["kind"].asString();
  for (const auto& [text, k] : kNames) {
    if (name == text) {
      kind = k;
      return true;
    }
  }
  return false;
}

struct Change {
  Kind kind;
  EventType type;
  const Json::Value* object;
};

std::vector<Change> changes_of(const Json::Value& root, Kind fallback) {
  std::vector<Change> out;
  const auto add = [&](const Json::Value& element) {
    const Json::Value* object = &element;
    EventType type = EventType::kAdded;
    if (element.isObject() && element["type"].isString() && element["object"].isObject()) {
      object = &element["object"];
      const std::string t = element["type"].asString();
      type = t == "DELETED" ? EventType::kDeleted : t == "MODIFIED" ? EventType::kModified : EventType::kAdded;
    }
    Kind kind = fallback;
    kind_named(*object, kind);
    out.push_back({kind, type, object});
  };
  if (root.isArray()) {
    for (const Json::Value& element : root) add(element);
  } else {
    add(root);
  }
  return out;
}

void check_text(std::string_view what, std::string_view text) {
  if (std::string problem = kroute::agent::check_header_value(text); !problem.empty()) {
    fail(std::string(what) + " in the snapshot: " + problem);
  }
}

// Every string of the snapshot that the module exposes ($kroute_namespace, $kroute_ingress,
// $kroute_service, its logs) or that kroute-table prints.
void check_strings(const kroute::SnapshotView& view) {
  for (const auto& host : view.hosts()) check_text("host", view.str(host.name));
  for (const auto& rule : view.rules()) {
    check_text("rule path", view.str(rule.path));
    check_text("declared path", view.str(rule.declared_path));
  }
  for (const auto& backend : view.backends()) {
    check_text("backend namespace", view.str(backend.ns));
    check_text("backend service", view.str(backend.service));
    check_text("backend port name", view.str(backend.port_name));
  }
  for (const auto& source : view.sources()) {
    check_text("source namespace", view.str(source.ns));
    check_text("source name", view.str(source.name));
  }
  for (const auto& tls : view.tls()) {
    check_text("tls host", view.str(tls.host));
    check_text("tls secret namespace", view.str(tls.secret_ns));
    check_text("tls secret name", view.str(tls.secret_name));
  }
  // Redirect Locations, rewritten URIs and upstream headers are made from these.
  for (const kroute::format::PolicyRecord& record : view.policy_records()) {
    check_text("policy record", view.str(record.a));
    std::string_view b = view.str(record.b);
    if (record.kind == kroute::format::PolicyKind::kCors) {
      // Methods, headers and exposed headers, one per line (policy/cors.h): each line is a header value.
      for (std::size_t end = b.find('\n'); end != std::string_view::npos; end = b.find('\n')) {
        check_text("policy record", b.substr(0, end));
        b.remove_prefix(end + 1);
      }
    }
    check_text("policy record", b);
  }
}

// The rules and TLS entries of the model that the builder put into the table.
template <typename Items>
std::vector<bool> kept(const Items& items, const kroute::BuildResult& build, kroute::Item item) {
  std::vector<bool> out(items.size(), true);
  for (const auto& d : build.diagnostics) {
    if (d.item == item && d.index < out.size()) out[d.index] = false;
  }
  for (const auto& c : build.conflicts) {
    if (c.item == item && c.loser < out.size()) out[c.loser] = false;
  }
  return out;
}

void check_lookups(const kroute::RouteModel& model, const kroute::BuildResult& build, const kroute::SnapshotView& view) {
  const std::vector<bool> rules = kept(model.rules, build, kroute::Item::kRule);
  kroute::PatternCache cache;
  const kroute::PathPatterns patterns(view, cache);
  if (patterns.failed() != 0) fail("a kept regex path does not compile in the reader");
  for (std::size_t i = 0; i < model.rules.size(); ++i) {
    const kroute::Rule& rule = model.rules[i];
    if (!rules[i] || rule.host.empty() || rule.host.starts_with("*.")) continue;
    // An HTTPRoute's rules have match conditions and listener scopes: a plain lookup need not find them.
    if (!model.sources[rule.source].kind.empty()) continue;
    // A regex host's paths are patterns: the request that reaches a rule is not its text. Matching
    // them must still be safe, with and without captures.
    kroute::HostMatch how;
    const kroute::format::HostEntry* host = view.find_host(rule.host, how);
    if (host != nullptr && (host->flags & kroute::format::kRegexPaths) != 0) {
      kroute::PathCaptures captures;
      (void)view.lookup(rule.host, rule.path.empty() ? "/" : rule.path, &patterns, &captures);
      if (captures.count > kroute::PathCaptures::kMaxGroups) fail("too many captures");
      continue;
    }
    const kroute::NormalizedPath normalized = kroute::normalize_rule_path(rule.path, rule.type);
    if (!normalized.error.empty()) fail("a kept rule's path does not normalize: " + normalized.error);
    const std::string request = normalized.path.empty() ? "/" : normalized.path;
    const kroute::RouteMatch match = view.lookup(rule.host, request);
    if (match.rule == nullptr || match.host_match != kroute::HostMatch::kExact) {
      fail("kept rule " + rule.host + " " + rule.path + " is not found by lookup");
    }
    // An Exact rule for the same path wins over a Prefix one; otherwise the rule itself must answer.
    const std::string_view found = view.str(match.rule->path);
    if (found != normalized.path && found != request) {
      fail("lookup " + rule.host + " " + request + " found path " + std::string(found));
    }
    const auto match_type = rule.type == kroute::PathType::kExact ? kroute::format::Match::kExact
                                                                  : kroute::format::Match::kPrefix;
    if (found != normalized.path || match.rule->match != match_type) continue;
    const kroute::Backend& want = model.backends[rule.backend];
    const kroute::format::BackendEntry& got = *match.backend;
    if (view.str(got.ns) != want.ns || view.str(got.service) != want.service || got.port != want.port ||
        view.str(got.port_name) != want.port_name) {
      fail("lookup " + rule.host + " " + request + " found backend " + std::string(view.str(got.service)) +
           " instead of " + want.service);
    }
  }
  const std::vector<bool> tls = kept(model.tls, build, kroute::Item::kTls);
  for (std::size_t i = 0; i < model.tls.size(); ++i) {
    const kroute::TlsHost& entry = model.tls[i];
    if (!tls[i] || entry.certificate.chain_pem.empty() || entry.host.starts_with("*.")) continue;
    const kroute::format::TlsEntry* served = view.certificate_for(entry.host);
    if (served == nullptr || view.str(served->secret_name) != entry.secret_name) {
      fail("TLS host " + entry.host + " does not get the certificate of Secret " + entry.secret_name);
    }
  }
}

std::vector<std::byte> build(const kroute::agent::CompiledTable& table, kroute::BuildResult* out = nullptr) {
  kroute::BuildResult result = kroute::build_snapshot(table.model, {1});
  std::vector<std::byte> bytes = result.bytes;
  if (out != nullptr) *out = std::move(result);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Bad objects are logged by design; the log is not what is under test.
  kroute::agent::log::set_level(kroute::agent::log::Level::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  // The same bytes as one line of a watch stream, as the watcher reads it.
  (void)kroute::agent::kube::parse_watch_event(text);
  Json::Value root;
  std::string error;
  if (!kroute::agent::kube::parse_json(text, root, error)) return 0;

  kroute::agent::CompileOptions options;
  options.watch_without_class = (mode & 8) != 0;
  if ((mode & 16) != 0) options.default_certificate = "default/tls";
  // Mode bit 128: the Gateway API too (GatewayClasses of controller kroute.dev/fuzz), with two address
  // slots when bit 1 is set as well (a scope per Gateway).
  if ((mode & 128) != 0) {
    options.gateway.controller = "kroute.dev/fuzz";
    options.gateway.addresses = {"192.0.2.1"};
    if ((mode & 1) != 0) {
      for (const char* text : {"192.0.2.10=127.0.10.1", "192.0.2.11=:8443"}) {
        kroute::agent::gateway::Slot slot;
        std::string error;
        if (!kroute::agent::gateway::parse_slot(text, slot, error)) fail("fuzz slot: " + error);
        options.gateway.slots.push_back(std::move(slot));
      }
    }
  }
  const std::vector<Change> changes = changes_of(root, static_cast<Kind>((mode & 7) % kroute::agent::kKindCount));

  // The store and cache as the agent wires them (agent.cc): the cache hears of every Ingress, Service and
  // EndpointSlice change (not of status-only ones). Half the changes land before a first compile, so the
  // rest are incremental; with mode bit 64 each of the rest is compiled as it lands, as the agent does with
  // changes apart in time (a few Ingress changes at a time patch the last table).
  kroute::agent::Metrics metrics;
  kroute::agent::CompileCache cache;
  kroute::agent::Store* store_ptr = nullptr;
  kroute::agent::Store store(metrics, [&](kroute::agent::Change change, Kind kind, const std::string& key) {
    if (change == kroute::agent::Change::kStatus) return;
    if (kind == Kind::kIngress) cache.ingress_changed(key);
    if (kind == Kind::kService) cache.service_changed(key);
    if (kind == Kind::kEndpointSlice) cache.slice_changed(*store_ptr, key);
  });
  store_ptr = &store;
  const std::size_t half = changes.size() / 2;
  if ((mode & 32) != 0) {
    // One LIST per kind, in kind order; then the first compile.
    for (Kind kind : kroute::agent::kAllKinds) {
      store.begin_list(kind);
      for (const Change& c : changes) {
        if (c.kind == kind && c.type != EventType::kDeleted) store.listed(kind, *c.object);
      }
      store.end_list(kind);
    }
    (void)kroute::agent::compile(store, options, cache);
  } else {
    // The table of the compile before, to check a compile that says nothing changed (the agent then
    // skips the build and keeps what nginx has).
    std::optional<kroute::agent::CompiledTable> before;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      if (i == half || (i > half && (mode & 64) != 0)) {
        const kroute::agent::CompiledTable& now = kroute::agent::compile(store, options, cache);
        if (cache.last_unchanged() &&
            (!before || build(*before) != build(kroute::agent::compile(store, options)) || before->warnings != now.warnings)) {
          fail("a compile that changed nothing gave another table than the one before");
        }
        before = now;
      }
      store.event(changes[i].kind, changes[i].type, *changes[i].object);
    }
  }

  kroute::agent::CompiledTable incremental = kroute::agent::compile(store, options, cache);
  kroute::agent::CompiledTable fresh = kroute::agent::compile(store, options);
  kroute::BuildResult result;
  kroute::BuildResult incremental_result;
  const std::vector<std::byte> fresh_bytes = build(fresh, &result);
  if (build(incremental, &incremental_result) != fresh_bytes) {
    fail("the incremental compile built another table than a fresh one");
  }
  if (incremental.warnings != fresh.warnings) fail("the incremental compile gave other warnings than a fresh one");
  kroute::agent::add_build_warnings(fresh, result, fresh.warnings);
  kroute::agent::add_build_warnings(incremental, incremental_result, incremental.warnings);
  if (incremental.warnings != fresh.warnings) fail("the incremental table got other build warnings than a fresh one");
  for (const kroute::agent::Warning& w : fresh.warnings) {
    check_text("warning reason", w.reason);
    check_text("warning message", w.message);
  }

  kroute::SnapshotView view;
  const kroute::ValidationResult opened = kroute::SnapshotView::open(result.bytes, view);
  if (!opened.ok) fail("the builder's snapshot does not open: " + opened.error);
  check_strings(view);
  check_lookups(fresh.model, result, view);
  for (const auto& [key, ingress] : store.ingresses) {
    for (const auto& rule : ingress.rules) {
      (void)view.certificate_for(rule.host);
      for (const auto& path : rule.paths) (void)view.lookup(rule.host, path.path);
    }
  }
  return 0;
}
