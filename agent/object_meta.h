// Reading the metadata every projection needs (name, namespace, creation time, generation), shared by the
// Ingress-side projections (store.cc) and the Gateway API ones (gateway/objects.cc).
#pragma once

#include <json/json.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kroute::agent {

// metadata.name and metadata.namespace; an error when the object has no metadata or no name.
std::string common_metadata(const Json::Value& object, std::string& ns, std::string& name);
// The names the API server allows: `check_name` for metadata.name, a label for a namespace. An empty
// namespace is left to the builder, which refuses sources and backends without one.
std::string check_object_names(const std::string& ns, const std::string& name,
                               std::string (*check_name)(std::string_view));
// A port number in 1..65535, or 0.
std::uint32_t port_number(const Json::Value& v);
// metadata.creationTimestamp as Unix seconds (0 when missing or malformed).
std::int64_t creation_unix(const Json::Value& object);

}  // namespace kroute::agent
