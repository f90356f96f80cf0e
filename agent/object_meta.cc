#include "object_meta.h"

#include "json_read.h"
#include "text.h"
#include "validate.h"

namespace kroute::agent {

std::string common_metadata(const Json::Value& object, std::string& ns, std::string& name) {
  if (!object.isObject()) return "not a JSON object";
  const Json::Value& metadata = object["metadata"];
  if (!metadata.isObject()) return "no metadata";
  name = str(metadata["name"]);
  ns = str(metadata["namespace"]);
  if (name.empty()) return "no metadata.name";
  return {};
}

std::string check_object_names(const std::string& ns, const std::string& name,
                               std::string (*check_name)(std::string_view)) {
  if (std::string problem = check_name(name); !problem.empty()) return "metadata.name " + problem;
  if (ns.empty()) return {};
  if (std::string problem = check_dns_label(ns); !problem.empty()) return "metadata.namespace " + problem;
  return {};
}

std::uint32_t port_number(const Json::Value& v) { return static_cast<std::uint32_t>(integer(v, 1, 65535, 0)); }

std::int64_t creation_unix(const Json::Value& object) {
  std::int64_t seconds = 0;
  if (!parse_rfc3339(str(at(object, "metadata", "creationTimestamp")), seconds)) return 0;
  return seconds;
}

}  // namespace kroute::agent
