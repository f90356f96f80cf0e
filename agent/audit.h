// `kroute-agent audit`: what kroute would do with the annotations of every Ingress in a cluster, for an
// ingress-nginx user deciding whether to switch. The verdicts are read_annotations()'s; this unit lists
// the Ingresses, groups the verdicts and prints them as text or JSON. `kroute-agent annotations` prints
// the declaration table itself.
#pragma once

#include <json/json.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ingress/annotations.h"
#include "kube/client.h"

namespace kroute::agent {

struct IngressAudit {
  std::string ns;
  std::string name;
  std::string ingress_class;  // spec.ingressClassName, else kubernetes.io/ingress.class; "" when neither
  std::vector<AnnotationVerdict> verdicts;  // honoured, then ignored, then refused; by key within each
};

struct AuditTotals {
  std::size_t ingresses = 0;
  std::size_t honoured = 0;
  std::size_t ignored = 0;
  std::size_t refused = 0;
};

struct Audit {
  std::string prefix;  // --annotation-prefix
  std::vector<IngressAudit> ingresses;  // by namespace, then name
  AuditTotals totals() const;
};

// Audits a JSON array of Ingress objects (a list's "items"; anything else reads as no Ingresses).
Audit audit_ingresses(const Json::Value& items, std::string_view prefix);

// One block per Ingress, then a total line; every string from the cluster is printable().
std::string audit_text(const Audit& audit);
// {"annotationPrefix", "ingresses": [{"namespace", "name", "class"?, "honoured": [key],
//  "ignored": [{"annotation", "why"}], "refused": [{"annotation", "why"}]}], "totals": {...}}
Json::Value audit_json(const Audit& audit);

// Every annotation of the table, one per line: key, status, note. (annotations_markdown() for docs.)
std::string annotations_text(std::string_view prefix);

// Every Ingress of the cluster (of `ns` when not empty) with paged LISTs, running `client`'s loop until
// done. `error` is set, and nothing returned, when the cluster cannot be read.
Json::Value list_ingresses(kube::Client& client, std::string_view ns, std::string& error);

struct AuditCommand {
  std::string kubeconfig;
  std::string context;
  std::string ns;
  std::string prefix;
  bool json = false;
};

// The subcommand: connects as the agent does, lists, prints to stdout. 0, or 1 when the cluster cannot
// be read (ignored and refused annotations are findings, not failures).
int run_audit(const AuditCommand& command);

}  // namespace kroute::agent
