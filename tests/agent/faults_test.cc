// What the agent does when things around it fail (docs/agent.md, "Faults"): readiness and its checks,
// and a table directory that cannot be written, is removed or comes back.
#include <doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "election.h"
#include "health.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "metrics.h"
#include "reader.h"
#include "table_publisher.h"

using namespace kroute::agent;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kroute-agent-test-XXXXXX").string();
    path = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

CompiledTable table_routing_to(const std::string& service) {
  CompiledTable table;
  table.model.sources.push_back({"default", "web", 1000});
  table.model.backends.push_back({"default", service, 80, {}, {{"10.0.0.1", 8080}}});
  table.model.rules.push_back({"a.com", "/", kroute::PathType::kPrefix, 0, 0});
  table.owned = {"default/web"};
  return table;
}

std::string served_by(const kroute::TableReader& reader) {
  const auto* current = reader.current();
  if (current == nullptr) return "none";
  const auto m = current->view.lookup("a.com", "/");
  return m.backend == nullptr ? "404" : std::string(current->view.str(m.backend->service));
}

std::unique_ptr<TablePublisher> open_publisher(const fs::path& dir, Metrics& metrics) {
  std::string error;
  auto publisher = TablePublisher::open({dir.string(), 3}, metrics, error);
  REQUIRE_MESSAGE(publisher != nullptr, error);
  return publisher;
}

// An httplib server on a loopback port, serving in a thread from construction to destruction, and a
// client of it. Routes are added to `http` before start().
struct LocalApi {
  httplib::Server http;
  std::thread serving;
  std::unique_ptr<kube::Client> client;

  void start() {
    const int port = http.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    serving = std::thread([this] { http.listen_after_bind(); });
    kube::ClusterAccess access;
    access.server = "http://127.0.0.1:" + std::to_string(port);
    std::string error;
    client = kube::Client::create(access, error);
    REQUIRE_MESSAGE(client, error);
  }
  ~LocalApi() {
    client.reset();
    http.stop();
    if (serving.joinable()) serving.join();
  }
};

std::vector<ReadinessCheck> all_ok() { return {{"synced", true, ""}, {"apiserver", true, ""}, {"table", true, ""}}; }

}  // namespace

TEST_CASE("backoff after an outage: reset() starts the delays short again") {
  kube::BackoffPolicy policy;  // 0.5 s doubling to 30 s
  kube::Backoff backoff(policy, 7);
  auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) backoff.next(now += std::chrono::seconds(1));
  CHECK(backoff.next(now += std::chrono::seconds(1)).count() >= 15000);
  backoff.reset();
  CHECK(backoff.next(now += std::chrono::seconds(1)).count() < 750);
}

TEST_CASE("readiness: ok, the failing checks named, exclude, verbose, an unknown check") {
  CHECK(answer_readiness(all_ok(), false, {}).status == 200);
  CHECK(answer_readiness(all_ok(), false, {}).body == "ok\n");

  auto checks = all_ok();
  checks[1] = {"apiserver", false, "the API server has not answered for 12s"};
  const ReadinessAnswer down = answer_readiness(checks, false, {});
  CHECK(down.status == 503);
  CHECK(down.body == "not ready: the API server has not answered for 12s\n");
  CHECK(answer_readiness(checks, false, {"apiserver"}).status == 200);
  CHECK(answer_readiness(checks, false, {"table"}).status == 503);

  const ReadinessAnswer verbose = answer_readiness(checks, true, {"table"});
  CHECK(verbose.status == 503);
  CHECK(verbose.body ==
        "[+]synced ok\n[-]apiserver failed: the API server has not answered for 12s\n[+]table excluded: ok\n"
        "readyz check failed\n");

  const ReadinessAnswer typo = answer_readiness(checks, false, {"apiservr"});
  CHECK(typo.status == 400);
  CHECK(typo.body.find("synced, apiserver, table") != std::string::npos);
}

TEST_CASE("readiness from the metrics: synced, the API server answering, the table written") {
  Metrics metrics;
  auto failing = [&] {
    std::string names;
    for (const ReadinessCheck& c : metrics.readiness(60000))
      if (!c.ok) names += std::string(names.empty() ? "" : ",") + c.name;
    return names;
  };
  CHECK(failing() == "synced,apiserver");
  CHECK(metrics.render().find("kroute_agent_ready 0\n") != std::string::npos);
  metrics.ready = true;
  metrics.apiserver_connected = true;
  CHECK(failing().empty());
  CHECK(metrics.render().find("kroute_agent_ready 1\n") != std::string::npos);

  metrics.apiserver_connected = false;
  metrics.apiserver_unreachable_since_ms = 45000;
  CHECK(failing() == "apiserver");
  CHECK(metrics.readiness(60000)[1].reason == "the API server has not answered for 15s");
  CHECK(metrics.render().find("kroute_agent_apiserver_connected 0\n") != std::string::npos);
  metrics.apiserver_connected = true;
  metrics.table_publish_failing = true;
  CHECK(failing() == "table");
  CHECK(metrics.render().find("kroute_agent_table_publish_failing 1\n") != std::string::npos);
  CHECK(metrics.render().find("kroute_agent_ready 0\n") != std::string::npos);
}

TEST_CASE("a table that cannot be written: an error, counted, failing until a write succeeds") {
  TempDir parent;
  const fs::path dir = parent.path / "table";
  Metrics metrics;
  auto publisher = open_publisher(dir, metrics);
  kroute::TableReader reader(dir.string());
  REQUIRE(publisher->publish(table_routing_to("first")).published);
  REQUIRE(reader.poll(0) == kroute::TableReader::Poll::kPickedUp);

  // The directory's path now names a file: nothing can be written there, nor made again.
  fs::remove_all(dir);
  std::ofstream(dir) << "in the way";
  PublishOutcome outcome = publisher->publish(table_routing_to("second"));
  CHECK_FALSE(outcome.published);
  CHECK(outcome.error.find("table") != std::string::npos);
  CHECK(outcome.generation == 1);  // what nginx still serves
  CHECK(metrics.publish_errors == 1);
  CHECK(metrics.table_publish_failing);
  publisher->keep_in_place();  // cannot put it back either: one more failed attempt
  CHECK(metrics.publish_errors == 2);
  CHECK(metrics.table_repairs == 0);
  CHECK(served_by(reader) == "first");

  fs::remove(dir);
  outcome = publisher->publish(table_routing_to("second"));
  CHECK(outcome.published);
  CHECK(outcome.generation == 2);
  CHECK_FALSE(metrics.table_publish_failing);
  CHECK(reader.refresh(0) == kroute::TableReader::Poll::kPickedUp);
  CHECK(served_by(reader) == "second");
}

TEST_CASE("a change undone while the table could not be written: the table is current again") {
  TempDir dir;
  Metrics metrics;
  auto publisher = open_publisher(dir.path, metrics);
  REQUIRE(publisher->publish(table_routing_to("first")).published);
  fs::remove_all(dir.path);
  std::ofstream(dir.path) << "in the way";
  CHECK_FALSE(publisher->publish(table_routing_to("second")).error.empty());
  CHECK(metrics.table_publish_failing);
  const PublishOutcome same = publisher->publish(table_routing_to("first"));
  CHECK(same.error.empty());
  CHECK_FALSE(same.published);
  CHECK_FALSE(metrics.table_publish_failing);
  fs::remove(dir.path);
}

TEST_CASE("a removed table directory is put back with the last routes, and readers follow") {
  TempDir parent;
  const fs::path dir = parent.path / "table";
  Metrics metrics;
  auto publisher = open_publisher(dir, metrics);
  publisher->keep_in_place();  // nothing published yet: nothing to put back
  CHECK_FALSE(fs::exists(dir / "table.1"));
  REQUIRE(publisher->publish(table_routing_to("web")).published);
  kroute::TableReader reader(dir.string());
  REQUIRE(reader.poll(0) == kroute::TableReader::Poll::kPickedUp);
  publisher->keep_in_place();
  CHECK(metrics.table_repairs == 0);

  fs::remove_all(dir);
  publisher->keep_in_place();
  CHECK(metrics.table_repairs == 1);
  CHECK(metrics.generation == 2);
  CHECK(fs::exists(dir / "table.2"));
  CHECK(reader.refresh(0) == kroute::TableReader::Poll::kPickedUp);
  CHECK(served_by(reader) == "web");
  CHECK(reader.current()->view.generation() == 2);
  // The same routes compiled again are not published again.
  CHECK_FALSE(publisher->publish(table_routing_to("web")).published);
  publisher->keep_in_place();
  CHECK(metrics.table_repairs == 1);
}

TEST_CASE("--listen is checked when the flags are read, not when the listener starts") {
  ListenAddress address;
  std::string error;
  CHECK(parse_listen("0.0.0.0:10254", address, error));
  CHECK(address.host == "0.0.0.0");
  CHECK(address.port == 10254);
  CHECK(parse_listen("[::1]:0", address, error));
  CHECK(address.host == "::1");
  CHECK(address.port == 0);
  CHECK(parse_listen("localhost:65535", address, error));
  CHECK(address.port == 65535);
  for (const char* bad : {"", "10254", ":10254", "0.0.0.0:", "0.0.0.0:80x", "0.0.0.0:70000", "0.0.0.0:-1",
                          "0.0.0.0:+80", "0.0.0.0:999999999999", "::1:80", "[]:80", "[x]:80", "a b:80", "[::1]"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parse_listen(bad, address, error));
    CHECK(error.starts_with("--listen must be host:port"));
  }
}

TEST_CASE("a Lease whose spec is not an object is a failed attempt: the election goes on") {
  // Its spec written through operator[] threw; the client's guard caught it, and no attempt came again.
  std::atomic<int> gets{0};
  LocalApi api;
  httplib::Server& server = api.http;
  server.Get("/apis/coordination.k8s.io/v1/namespaces/default/leases/kroute-agent",
             [&](const httplib::Request&, httplib::Response& res) {
               const int n = ++gets;
               if (n <= 2) {
                 res.set_content(std::string(R"({"kind": "Lease", "metadata": {"name": "kroute-agent"}, "spec": )") +
                                     (n == 1 ? "5}" : "\"x\"}"),
                                 "application/json");
               } else {
                 res.status = 404;
                 res.set_content(R"({"kind": "Status", "reason": "NotFound"})", "application/json");
               }
             });
  server.Post("/apis/coordination.k8s.io/v1/namespaces/default/leases",
              [](const httplib::Request& req, httplib::Response& res) {
                res.status = 201;
                res.set_content(req.body, "application/json");
              });
  api.start();
  kube::Client* client = api.client.get();
  Metrics metrics;
  ElectionOptions options;
  options.identity = "me";
  options.retry_period = std::chrono::seconds(1);
  std::atomic<bool> stop{false};
  Elector elector(*client, metrics, options, [&](bool leader) { stop = stop || leader; });
  elector.start();
  client->after(std::chrono::seconds(8), [&] { stop = true; });
  client->run(stop);
  CHECK(elector.leader());
  CHECK(gets >= 3);
}

TEST_CASE("a request sent or cancelled from a chunk handler runs and ends like any other") {
  // curl calls chunk handlers from inside curl_multi_perform and refuses to add a transfer then: a status
  // write sent while a watch event was handled never ran, and its writer waited for it for good.
  std::atomic<bool> release{false};
  LocalApi api;
  httplib::Server& server = api.http;
  server.Get("/stream", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [&](std::size_t, httplib::DataSink& sink) {
      const std::string line = "{\"type\": \"ADDED\"}\n";
      sink.write(line.data(), line.size());
      for (int i = 0; i < 100 && !release; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      sink.done();
      return true;
    });
  });
  server.Get("/plain", [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
  api.start();
  kube::Client* client = api.client.get();
  std::atomic<bool> stop{false};
  long inner_status = 0;
  bool cancelled_done = false;
  int chunks = 0;
  kube::Request stream;
  stream.path = "/stream";
  stream.stream = true;
  stream.stall_timeout = std::chrono::seconds(10);
  kube::Request slow;
  slow.path = "/stream";
  slow.stream = true;
  slow.stall_timeout = std::chrono::seconds(10);
  const kube::RequestId to_cancel =
      client->send(slow, [&](kube::Response&&) { cancelled_done = true; }, [](std::string_view) { return true; });
  client->send(
      stream, [&](kube::Response&&) {},
      [&](std::string_view) {
        if (++chunks > 1) return true;
        // Inside curl: a new request, and the cancel of another streaming one.
        kube::Request plain;
        plain.path = "/plain";
        client->send(plain, [&](kube::Response&& r) {
          inner_status = r.status;
          release = true;
          stop = true;
        });
        client->cancel(to_cancel);
        return true;
      });
  client->after(std::chrono::seconds(8), [&] { stop = true; });
  client->run(stop);
  CHECK(inner_status == 200);
  CHECK_FALSE(cancelled_done);
  release = true;
}
