#include "audit.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <tuple>

#include "json_read.h"
#include "kube/config.h"
#include "kube/watch_event.h"
#include "validate.h"

namespace kroute::agent {

namespace {

constexpr std::size_t kPageSize = 500;
constexpr int kListAttempts = 3;  // a continue token that expires (410) starts the list over

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kHonoured: return "honoured";
    case Verdict::kIgnored: return "ignored";
    case Verdict::kRefused: return "refused";
  }
  return "unknown";
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

}  // namespace

AuditTotals Audit::totals() const {
  AuditTotals totals;
  totals.ingresses = ingresses.size();
  for (const IngressAudit& ingress : ingresses) {
    for (const AnnotationVerdict& v : ingress.verdicts) {
      ++(v.verdict == Verdict::kHonoured ? totals.honoured
                                         : v.verdict == Verdict::kIgnored ? totals.ignored : totals.refused);
    }
  }
  return totals;
}

Audit audit_ingresses(const Json::Value& items, std::string_view prefix) {
  Audit audit;
  audit.prefix = std::string(prefix);
  for (const Json::Value& item : elements(items)) {
    IngressAudit ingress;
    ingress.ns = str(at(item, "metadata", "namespace"));
    ingress.name = str(at(item, "metadata", "name"));
    ingress.ingress_class = str(at(item, "spec", "ingressClassName"));
    if (ingress.ingress_class.empty())
      ingress.ingress_class = str(at(item, "metadata", "annotations", "kubernetes.io/ingress.class"));
    ingress.verdicts = read_annotations(at(item, "metadata", "annotations"), prefix).verdicts;
    std::stable_sort(ingress.verdicts.begin(), ingress.verdicts.end(),
                     [](const AnnotationVerdict& a, const AnnotationVerdict& b) {
                       return std::tie(a.verdict, a.key) < std::tie(b.verdict, b.key);
                     });
    audit.ingresses.push_back(std::move(ingress));
  }
  std::sort(audit.ingresses.begin(), audit.ingresses.end(), [](const IngressAudit& a, const IngressAudit& b) {
    return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
  });
  return audit;
}

std::string audit_text(const Audit& audit) {
  std::string out;
  for (const IngressAudit& ingress : audit.ingresses) {
    out += "Ingress " + printable(ingress.ns) + "/" + printable(ingress.name);
    if (!ingress.ingress_class.empty()) out += " (class " + printable(ingress.ingress_class) + ")";
    if (ingress.verdicts.empty()) {
      out += ": no annotations under " + std::string(kOwnAnnotationPrefix) + "/ or " + audit.prefix + "/\n";
      continue;
    }
    out += "\n";
    for (const AnnotationVerdict& v : ingress.verdicts) {
      char label[16];
      std::snprintf(label, sizeof label, "  %-9s ", verdict_name(v.verdict));
      out += label + printable(v.key);
      if (!v.why.empty()) out += ": " + v.why;
      out += "\n";
    }
  }
  const AuditTotals t = audit.totals();
  if (!audit.ingresses.empty()) out += "\n";
  out += plural(t.ingresses, "Ingress", "Ingresses") + ": " + plural(t.honoured, "annotation", "annotations") +
         " honoured, " + std::to_string(t.ignored) + " ignored, " + std::to_string(t.refused) + " refused\n";
  return out;
}

Json::Value audit_json(const Audit& audit) {
  Json::Value out(Json::objectValue);
  out["annotationPrefix"] = audit.prefix;
  Json::Value& ingresses = out["ingresses"] = Json::Value(Json::arrayValue);
  for (const IngressAudit& ingress : audit.ingresses) {
    Json::Value entry(Json::objectValue);
    entry["namespace"] = ingress.ns;
    entry["name"] = ingress.name;
    if (!ingress.ingress_class.empty()) entry["class"] = ingress.ingress_class;
    entry["honoured"] = Json::Value(Json::arrayValue);
    entry["ignored"] = Json::Value(Json::arrayValue);
    entry["refused"] = Json::Value(Json::arrayValue);
    for (const AnnotationVerdict& v : ingress.verdicts) {
      if (v.verdict == Verdict::kHonoured) {
        entry["honoured"].append(v.key);
        continue;
      }
      Json::Value item(Json::objectValue);
      item["annotation"] = v.key;
      item["why"] = v.why;
      entry[verdict_name(v.verdict)].append(std::move(item));
    }
    ingresses.append(std::move(entry));
  }
  const AuditTotals t = audit.totals();
  Json::Value& totals = out["totals"] = Json::Value(Json::objectValue);
  totals["ingresses"] = static_cast<Json::Int64>(t.ingresses);
  totals["honoured"] = static_cast<Json::Int64>(t.honoured);
  totals["ignored"] = static_cast<Json::Int64>(t.ignored);
  totals["refused"] = static_cast<Json::Int64>(t.refused);
  return out;
}

std::string annotations_text(std::string_view prefix) {
  std::string out;
  for (const AnnotationSpec& spec : annotation_specs()) {
    char head[160];
    std::snprintf(head, sizeof head, "%-60s %-16s ", (std::string(prefix) + "/" + std::string(spec.name)).c_str(),
                  spec.snippet ? "never (refused)" : support_name(spec.support));
    out += head + std::string(spec.note) + "\n";
  }
  return out;
}

Json::Value list_ingresses(kube::Client& client, std::string_view ns, std::string& error) {
  std::string collection = "/apis/networking.k8s.io/v1";
  if (!ns.empty()) collection += "/namespaces/" + kube::url_encode(ns);
  collection += "/ingresses?limit=" + std::to_string(kPageSize);
  Json::Value items(Json::arrayValue);
  std::string continue_token;
  for (int attempt = 1;;) {
    kube::Request request;
    request.path = collection;
    if (!continue_token.empty()) request.path += "&continue=" + kube::url_encode(continue_token);
    kube::Response response;
    std::atomic<bool> done{false};
    client.send(std::move(request), [&](kube::Response&& r) {
      response = std::move(r);
      done.store(true);
    });
    client.run(done);
    if (response.status == 410 && !continue_token.empty() && attempt < kListAttempts) {
      ++attempt;
      items = Json::Value(Json::arrayValue);
      continue_token.clear();
      continue;
    }
    if (!response.ok()) {
      error = "listing Ingresses failed: " + response.describe();
      return Json::Value(Json::arrayValue);
    }
    Json::Value page;
    std::string parse_error;
    if (!kube::parse_json(response.body, page, parse_error) || !at(page, "items").isArray()) {
      error = "the Ingress list is not a list: " + parse_error;
      return Json::Value(Json::arrayValue);
    }
    for (const Json::Value& item : page["items"]) items.append(item);
    continue_token = str(at(page, "metadata", "continue"));
    if (continue_token.empty()) return items;
  }
}

int run_audit(const AuditCommand& command) {
  const kube::ConfigResult config = kube::discover(command.kubeconfig, command.context);
  if (!config.error.empty()) {
    std::fprintf(stderr, "kroute-agent audit: bad cluster configuration: %s\n", config.error.c_str());
    return 1;
  }
  std::string error;
  std::unique_ptr<kube::Client> client = kube::Client::create(config.access, error);
  if (!client) {
    std::fprintf(stderr, "kroute-agent audit: cannot create the API client: %s\n", error.c_str());
    return 1;
  }
  const Json::Value items = list_ingresses(*client, command.ns, error);
  if (!error.empty()) {
    std::fprintf(stderr, "kroute-agent audit: %s (%s)\n", error.c_str(), config.access.server.c_str());
    return 1;
  }
  const Audit audit = audit_ingresses(items, command.prefix);
  std::string out;
  if (command.json) {
    Json::StreamWriterBuilder writer;
    writer["indentation"] = "  ";
    out = Json::writeString(writer, audit_json(audit)) + "\n";
  } else {
    out = audit_text(audit);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace kroute::agent
