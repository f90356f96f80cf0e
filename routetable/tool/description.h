// The JSON table description kroute-table builds from (docs/table-description.md): Ingress-shaped
// rules plus backends with their endpoints. Every error names the JSON field it is about.
#pragma once

#include <string>
#include <vector>

#include "builder.h"
#include "model.h"

namespace kroute {

struct Description {
  RouteModel model;
  // JSON location of each model item, for messages: "ingresses[0].rules[1].paths[2]".
  std::vector<std::string> rule_fields;
  std::vector<std::string> backend_fields;
  std::vector<std::string> tls_fields;
  std::vector<std::string> source_fields;
  std::vector<std::string> host_policy_fields;  // "ingresses[0].hostPolicies[1]", or the annotations that made it
  std::vector<std::string> scope_fields;        // "scopes[0]"
  std::string default_backend_field;
};

struct DescriptionResult {
  Description description;
  std::vector<std::string> errors;  // "field: problem", one per line
};

DescriptionResult parse_description(const std::string& json_text);

// "ingresses[0].rules[1].paths[2]: path must start with '/'"
std::string describe(const Description& description, const Diagnostic& diagnostic);
std::string describe(const Description& description, const Conflict& conflict);

}  // namespace kroute
