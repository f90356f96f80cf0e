#include <doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#include "kube/config.h"

using namespace kroute::agent::kube;

namespace {

const char* kKubeconfig = R"(apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: Q0EgUEVN
- name: other
  cluster:
    server: https://10.0.0.1:443
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
- name: robot
  user:
    token: abc.def
- name: filer
  user:
    tokenFile: token.txt
contexts:
- name: dev
  context: {cluster: dev, user: admin, namespace: team}
- name: robot
  context: {cluster: other, user: robot}
- name: filer
  context: {cluster: other, user: filer}
- name: broken
  context: {cluster: nowhere, user: admin}
current-context: dev
)";

}  // namespace

TEST_CASE("kubeconfig: current context with inline CA and client certificate") {
  const ConfigResult r = parse_kubeconfig(kKubeconfig, "/base");
  REQUIRE(r.error == "");
  CHECK(r.access.server == "https://127.0.0.1:6443");
  CHECK(r.access.ca_pem == "CA PEM");
  CHECK(r.access.client_cert_pem == "CERT");
  CHECK(r.access.client_key_pem == "KEY");
  CHECK(r.access.default_namespace == "team");
  CHECK_FALSE(r.access.insecure_skip_tls_verify);
}

TEST_CASE("kubeconfig: another context, token, insecure, tokenFile relative to the file") {
  const ConfigResult robot = parse_kubeconfig(kKubeconfig, "/base", "robot");
  REQUIRE(robot.error == "");
  CHECK(robot.access.token == "abc.def");
  CHECK(robot.access.insecure_skip_tls_verify);
  CHECK(robot.access.default_namespace == "default");
  const ConfigResult filer = parse_kubeconfig(kKubeconfig, "/base", "filer");
  REQUIRE(filer.error == "");
  CHECK(filer.access.token_file == "/base/token.txt");
}

TEST_CASE("kubeconfig: clear errors") {
  CHECK(parse_kubeconfig(kKubeconfig, "/", "missing").error == "context \"missing\" not found");
  CHECK(parse_kubeconfig(kKubeconfig, "/", "broken").error.find("cluster \"nowhere\"") != std::string::npos);
  CHECK(parse_kubeconfig("{{{", "/").error.find("cannot parse kubeconfig") == 0);
  CHECK(parse_kubeconfig("- a list", "/").error.find("not a kubeconfig") == 0);
  CHECK(parse_kubeconfig("apiVersion: v1\nclusters: []\n", "/").error.find("no current-context") == 0);
  CHECK(load_kubeconfig("/nonexistent/kubeconfig").error.find("cannot read /nonexistent/kubeconfig") != std::string::npos);
  const std::string bad_ca = R"(clusters: [{name: c, cluster: {server: "https://h", certificate-authority-data: "!!"}}]
contexts: [{name: x, context: {cluster: c}}]
current-context: x)";
  CHECK(parse_kubeconfig(bad_ca, "/").error == "certificate-authority-data is not valid base64");
  const std::string not_url = R"(clusters: [{name: c, cluster: {server: "h:6443"}}]
contexts: [{name: x, context: {cluster: c}}]
current-context: x)";
  CHECK(parse_kubeconfig(not_url, "/").error.find("not an http(s) URL") != std::string::npos);
}

TEST_CASE("in-cluster: environment, token, CA and namespace files") {
  const auto dir = std::filesystem::temp_directory_path() / ("kroute-sa-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "tok-1\n";
  std::ofstream(dir / "ca.crt") << "CA";
  std::ofstream(dir / "namespace") << "kroute-system";
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  const auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  const ConfigResult r = load_in_cluster(dir.string(), lookup);
  REQUIRE(r.error == "");
  CHECK(r.access.server == "https://[fd00::1]:443");
  CHECK(r.access.ca_pem == "CA");
  CHECK(r.access.default_namespace == "kroute-system");
  CHECK(r.access.token_file == (dir / "token").string());

  SUBCASE("the token file is re-read once it is older than its max age") {
    TokenSource source("", r.access.token_file, std::chrono::seconds(60));
    std::string error;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(source.get(t0, error) == "tok-1");
    std::ofstream(dir / "token") << "tok-2";
    CHECK(source.get(t0 + std::chrono::seconds(30), error) == "tok-1");
    CHECK(source.get(t0 + std::chrono::seconds(61), error) == "tok-2");
    std::filesystem::remove(dir / "token");
    CHECK(source.get(t0 + std::chrono::seconds(200), error) == "tok-2");
    CHECK(error.find("cannot read") == 0);
  }
  env.erase("KUBERNETES_SERVICE_PORT");
  CHECK(load_in_cluster(dir.string(), lookup).error.find("not in a cluster") == 0);
  std::filesystem::remove_all(dir);
}
