#include "kube/config.h"

#include "text.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace kroute::agent::kube {
namespace {

using agent::base64_decode;
using agent::trim;

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

// Looks up `name` in a kubeconfig list (clusters, users, contexts) and returns its inner map.
// (A default YAML::Node is a defined null node, so absence is an empty optional.)
std::optional<YAML::Node> find_named(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name && item[inner] && item[inner].IsMap()) return item[inner];
  }
  return std::nullopt;
}

std::string scalar(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

// "-data" (base64 inline) wins over the file, as in client-go.
bool data_or_file(const YAML::Node& node, const char* data_key, const char* file_key, const std::string& base_dir,
                  std::string& out, std::string& error) {
  const std::string data = scalar(node, data_key);
  if (!data.empty()) {
    if (!base64_decode(data, out)) {
      error = std::string(data_key) + " is not valid base64";
      return false;
    }
    return true;
  }
  const std::string file = scalar(node, file_key);
  if (file.empty()) return true;
  return read_file(resolve(file, base_dir), out, error);
}

}  // namespace

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return true;
}

ConfigResult parse_kubeconfig(const std::string& text, const std::string& base_dir, const std::string& context) {
  ConfigResult result;
  ClusterAccess& access = result.access;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) {
      result.error = "not a kubeconfig (expected a YAML map)";
      return result;
    }
    const std::string context_name = context.empty() ? scalar(root, "current-context") : context;
    if (context_name.empty()) {
      result.error = "no current-context set and no --context given";
      return result;
    }
    const std::optional<YAML::Node> found_ctx = find_named(root["contexts"], context_name, "context");
    if (!found_ctx) {
      result.error = "context \"" + context_name + "\" not found";
      return result;
    }
    const YAML::Node& ctx = *found_ctx;
    const std::string cluster_name = scalar(ctx, "cluster");
    const std::optional<YAML::Node> found_cluster = find_named(root["clusters"], cluster_name, "cluster");
    if (!found_cluster) {
      result.error = "cluster \"" + cluster_name + "\" (of context \"" + context_name + "\") not found";
      return result;
    }
    const YAML::Node& cluster = *found_cluster;
    access.server = scalar(cluster, "server");
    while (!access.server.empty() && access.server.back() == '/') access.server.pop_back();
    if (access.server.empty()) {
      result.error = "cluster \"" + cluster_name + "\" has no server";
      return result;
    }
    if (access.server.rfind("https://", 0) != 0 && access.server.rfind("http://", 0) != 0) {
      result.error = "server \"" + access.server + "\" is not an http(s) URL";
      return result;
    }
    access.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>();
    if (!data_or_file(cluster, "certificate-authority-data", "certificate-authority", base_dir, access.ca_pem,
                      result.error)) {
      return result;
    }
    const std::string user_name = scalar(ctx, "user");
    const std::optional<YAML::Node> found_user = find_named(root["users"], user_name, "user");
    if (!user_name.empty() && !found_user) {
      result.error = "user \"" + user_name + "\" (of context \"" + context_name + "\") not found";
      return result;
    }
    if (found_user) {
      const YAML::Node& user = *found_user;
      if (!data_or_file(user, "client-certificate-data", "client-certificate", base_dir, access.client_cert_pem,
                        result.error) ||
          !data_or_file(user, "client-key-data", "client-key", base_dir, access.client_key_pem, result.error)) {
        return result;
      }
      if (access.client_cert_pem.empty() != access.client_key_pem.empty()) {
        result.error = "user \"" + user_name + "\" has a client certificate without a key or a key without a certificate";
        return result;
      }
      access.token = scalar(user, "token");
      const std::string token_file = scalar(user, "tokenFile");
      if (!token_file.empty()) access.token_file = resolve(token_file, base_dir);
      if (user["exec"] || user["auth-provider"]) {
        if (access.token.empty() && access.token_file.empty() && access.client_cert_pem.empty()) {
          result.error = "user \"" + user_name + "\" uses exec or auth-provider credentials, which kroute-agent does not run";
          return result;
        }
      }
    }
    access.default_namespace = scalar(ctx, "namespace");
    if (access.default_namespace.empty()) access.default_namespace = "default";
    access.description = "kubeconfig context " + context_name;
  } catch (const YAML::Exception& e) {
    result.error = std::string("cannot parse kubeconfig: ") + e.what();
  }
  return result;
}

ConfigResult load_kubeconfig(const std::string& path, const std::string& context) {
  ConfigResult result;
  std::string text;
  if (!read_file(path, text, result.error)) return result;
  const std::size_t slash = path.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  result = parse_kubeconfig(text, base_dir, context);
  if (!result.error.empty()) {
    result.error = path + ": " + result.error;
  } else {
    result.access.description += " of " + path;
  }
  return result;
}

ConfigResult load_in_cluster(const std::string& service_account_dir, const EnvLookup& getenv) {
  ConfigResult result;
  ClusterAccess& access = result.access;
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    result.error = "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set";
    return result;
  }
  const std::string h = host;
  access.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  access.token_file = service_account_dir + "/token";
  std::string token;
  if (!read_file(access.token_file, token, result.error)) {
    result.error = "in-cluster token: " + result.error;
    return result;
  }
  if (!read_file(service_account_dir + "/ca.crt", access.ca_pem, result.error)) {
    result.error = "in-cluster CA bundle: " + result.error;
    return result;
  }
  std::string ns;
  std::string ignored;
  access.default_namespace = read_file(service_account_dir + "/namespace", ns, ignored) ? trim(ns) : "default";
  access.description = "in-cluster service account (" + service_account_dir + ")";
  return result;
}

ConfigResult discover(const std::string& kubeconfig_flag, const std::string& context) {
  if (!kubeconfig_flag.empty()) return load_kubeconfig(kubeconfig_flag, context);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string first = env;
    first = first.substr(0, first.find(':'));
    return load_kubeconfig(first, context);
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0') {
    const char* dir = std::getenv("KROUTE_SERVICEACCOUNT_DIR");
    return load_in_cluster(dir != nullptr && *dir != '\0' ? dir : kServiceAccountDir,
                           [](const char* name) { return std::getenv(name); });
  }
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    const std::string path = std::string(home) + "/.kube/config";
    if (std::ifstream(path).good()) return load_kubeconfig(path, context);
  }
  ConfigResult result;
  result.error = "no cluster configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod";
  return result;
}

TokenSource::TokenSource(std::string token, std::string file, std::chrono::seconds max_age)
    : token_(std::move(token)), file_(std::move(file)), max_age_(max_age) {}

const std::string& TokenSource::get(std::chrono::steady_clock::time_point now, std::string& error) {
  if (file_.empty()) return token_;
  if (read_at_ == std::chrono::steady_clock::time_point{} || now - read_at_ >= max_age_) {
    std::string text;
    if (read_file(file_, text, error)) {
      token_ = trim(text);
      read_at_ = now;
    }
  }
  return token_;
}

}  // namespace kroute::agent::kube
