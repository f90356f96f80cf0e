#include "kube/client.h"

#include <curl/curl.h>
#include <json/json.h>

#include <algorithm>
#include <vector>

#include "json_read.h"
#include "kube/watch_event.h"
#include "log.h"

namespace kroute::agent::kube {
namespace {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// A stream's error body (a Status object) is small; anything more is not worth keeping.
constexpr std::size_t kMaxErrorBody = 64 * 1024;

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

}  // namespace

struct Client::Transfer {
  // The first bytes of an answer: the API server is there (told to the client once per transfer).
  void answered() {
    if (answered_once) return;
    answered_once = true;
    client->contact();
  }

  Client* client = nullptr;
  bool answered_once = false;
  RequestId id = 0;
  std::unique_ptr<CURL, EasyDeleter> easy;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  Request request;
  DoneHandler on_done;
  ChunkHandler on_chunk;
  Response response;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

std::string Response::describe() const {
  if (!transport_error.empty()) return transport_error;
  if (aborted) return "aborted";
  std::string text = "HTTP " + std::to_string(status);
  Json::Value status_object;
  std::string errors;
  // parse_json, never a reader of its own: a body nested too deep is an answer to describe, not an exception.
  if (!body.empty() && parse_json(body, status_object, errors) && status_object.isObject()) {
    const std::string reason = str(at(status_object, "reason"));
    const std::string message = str(at(status_object, "message"));
    if (!reason.empty()) text += " " + reason;
    if (!message.empty()) text += ": " + message;
  } else if (!body.empty()) {
    text += ": " + body.substr(0, 200);
  }
  return text;
}

std::string url_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Client::Client(ClusterAccess access)
    : access_(std::move(access)), token_(access_.token, access_.token_file) {}

std::unique_ptr<Client> Client::create(const ClusterAccess& access, std::string& error) {
  static CurlGlobal global;
  std::unique_ptr<Client> client(new Client(access));
  client->multi_ = curl_multi_init();
  if (client->multi_ == nullptr) {
    error = "curl_multi_init failed";
    return nullptr;
  }
  std::string token_error;
  client->token_.get(std::chrono::steady_clock::now(), token_error);
  if (!token_error.empty()) {
    error = "bearer token: " + token_error;
    return nullptr;
  }
  return client;
}

Client::~Client() {
  for (auto& [id, transfer] : transfers_) curl_multi_remove_handle(static_cast<CURLM*>(multi_), transfer->easy.get());
  transfers_.clear();
  release_cancelled();
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

namespace {

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Client::Transfer*>(user);
  const size_t bytes = size * count;
  if (!transfer->request.stream) {
    transfer->response.body.append(data, bytes);
    return bytes;
  }
  long status = 0;
  curl_easy_getinfo(transfer->easy.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) transfer->answered();
  if (status != 200) {
    if (transfer->response.body.size() < kMaxErrorBody) transfer->response.body.append(data, bytes);
    return bytes;
  }
  // Nothing may unwind through curl's C frames: a handler that throws aborts its transfer.
  bool keep_going = true;
  try {
    keep_going = !transfer->on_chunk || transfer->on_chunk(std::string_view(data, bytes));
  } catch (const std::exception& e) {
    log::error("stream handler failed; restarting the stream", {{"error", e.what()}});
    keep_going = false;
  }
  if (!keep_going) {
    transfer->response.aborted = true;
    return 0;
  }
  return bytes;
}

// A handler that throws is a bug, but never one that stops the agent: log it and go on.
template <typename Fn>
void guarded(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log::error("unexpected exception; continuing", {{"in", what}, {"error", e.what()}});
  }
}

curl_blob blob_of(const std::string& text) {
  curl_blob blob{};
  blob.data = const_cast<char*>(text.data());
  blob.len = text.size();
  blob.flags = CURL_BLOB_COPY;
  return blob;
}

}  // namespace

RequestId Client::send(Request request, DoneHandler on_done, ChunkHandler on_chunk) {
  auto transfer = std::make_unique<Transfer>();
  transfer->client = this;
  transfer->id = next_id_++;
  transfer->easy.reset(curl_easy_init());
  transfer->request = std::move(request);
  transfer->on_done = std::move(on_done);
  transfer->on_chunk = std::move(on_chunk);
  CURL* easy = transfer->easy.get();
  const Request& r = transfer->request;

  const std::string url = access_.server + r.path;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "kroute-agent/0.1");
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error_buffer);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  if (r.stream) {
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(r.stall_timeout.count()));
  } else {
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
  }
  if (r.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
  }

  if (access_.insecure_skip_tls_verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!access_.ca_pem.empty()) {
    curl_blob ca = blob_of(access_.ca_pem);
    curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (!access_.client_cert_pem.empty()) {
    curl_blob cert = blob_of(access_.client_cert_pem);
    curl_blob key = blob_of(access_.client_key_pem);
    curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
  }

  curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  if (r.method != "GET") headers = curl_slist_append(headers, ("Content-Type: " + r.content_type).c_str());
  std::string token_error;
  const std::string& token = token_.get(std::chrono::steady_clock::now(), token_error);
  if (!token_error.empty()) log::warn("cannot re-read the token file; keeping the previous token", {{"error", token_error}});
  if (!token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  transfer->headers.reset(headers);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);

  const RequestId id = transfer->id;
  transfers_.emplace(id, std::move(transfer));
  if (in_curl_) {
    // From a chunk handler: curl would refuse it (CURLM_RECURSIVE_API_CALL) and the request would
    // never run nor end. It starts when curl returns.
    deferred_starts_.push_back(id);
  } else {
    start(id);
  }
  return id;
}

void Client::start(RequestId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;  // cancelled before it started
  const CURLMcode code = curl_multi_add_handle(static_cast<CURLM*>(multi_), it->second->easy.get());
  if (code != CURLM_OK) refused_.emplace_back(id, std::string("curl refused the request: ") + curl_multi_strerror(code));
}

void Client::start_deferred() {
  std::vector<RequestId> starts;
  starts.swap(deferred_starts_);
  for (RequestId id : starts) start(id);
}

void Client::cancel(RequestId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> transfer = std::move(it->second);
  transfers_.erase(it);
  if (in_curl_) {
    // curl may be inside this very transfer's callback: it is let go when curl returns.
    transfer->on_done = nullptr;
    transfer->on_chunk = nullptr;
    cancelled_.push_back(std::move(transfer));
    return;
  }
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), transfer->easy.get());
}

void Client::release_cancelled() {
  for (const std::unique_ptr<Transfer>& transfer : cancelled_) {
    curl_multi_remove_handle(static_cast<CURLM*>(multi_), transfer->easy.get());
  }
  cancelled_.clear();
}

TimerId Client::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  const TimerId id = next_timer_++;
  const auto due = std::chrono::steady_clock::now() + delay;
  timers_.emplace(std::make_pair(due, id), std::move(fn));
  timer_due_.emplace(id, due);
  return id;
}

void Client::cancel_timer(TimerId id) {
  auto it = timer_due_.find(id);
  if (it == timer_due_.end()) return;
  timers_.erase(std::make_pair(it->second, id));
  timer_due_.erase(it);
}

void Client::finish_done_transfers() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  // Requests curl would not take: answered with the reason, as a failed transfer would be.
  std::vector<std::pair<RequestId, std::string>> refused;
  refused.swap(refused_);
  for (auto& [id, why] : refused) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);
    log::warn("request not sent", {{"path", transfer->request.path}, {"error", why}});
    Response response;
    response.transport_error = why;
    if (transfer->on_done) guarded("request handler", [&] { transfer->on_done(std::move(response)); });
  }
  int queued = 0;
  // Collected first: a done handler may start or cancel other transfers.
  std::vector<std::pair<RequestId, CURLcode>> done;
  while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    Transfer* transfer = nullptr;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&transfer));
    done.emplace_back(transfer->id, message->data.result);
  }
  for (const auto& [id, code] : done) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi, transfer->easy.get());
    Response response = std::move(transfer->response);
    curl_easy_getinfo(transfer->easy.get(), CURLINFO_RESPONSE_CODE, &response.status);
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && response.aborted)) {
      response.transport_error = std::string(curl_easy_strerror(code));
      if (transfer->error_buffer[0] != '\0') response.transport_error += ": " + std::string(transfer->error_buffer);
    }
    if (response.status == 401) token_.invalidate();
    if (response.status != 0) {
      transfer->answered();
    } else if (id != probe_request_) {
      probe_soon();  // is it this request, or the server?
    }
    if (transfer->on_done) guarded("request handler", [&] { transfer->on_done(std::move(response)); });
  }
}

void Client::run_due_timers() {
  const auto now = std::chrono::steady_clock::now();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timer_due_.erase(node.key().second);
    guarded("timer", node.mapped());
  }
}

std::chrono::milliseconds Client::until_next_timer() const {
  // At most a second, so curl's stall checks run and `stop` is noticed even without wakeup().
  std::chrono::milliseconds wait(1000);
  if (!timers_.empty()) {
    const auto delta = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.begin()->first.first -
                                                                             std::chrono::steady_clock::now());
    wait = std::clamp(delta + std::chrono::milliseconds(1), std::chrono::milliseconds(0), wait);
  }
  return wait;
}

void Client::run(const std::atomic<bool>& stop) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  while (!stop.load(std::memory_order_relaxed)) {
    int running = 0;
    in_curl_ = true;
    curl_multi_perform(multi, &running);
    in_curl_ = false;
    start_deferred();
    finish_done_transfers();
    release_cancelled();
    run_due_timers();
    if (stop.load(std::memory_order_relaxed)) break;
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(until_next_timer().count()), nullptr);
  }
}

void Client::wakeup() { curl_multi_wakeup(static_cast<CURLM*>(multi_)); }

void Client::probe_every(std::chrono::milliseconds interval) {
  probe_interval_ = std::max(interval, std::chrono::milliseconds(1000));
  cancel_timer(probe_timer_);
  schedule_probe();
}

std::uint64_t Client::add_reachability_handler(ReachabilityHandler handler) {
  const std::uint64_t id = next_handler_++;
  reachability_handlers_.emplace(id, std::move(handler));
  return id;
}

void Client::remove_reachability_handler(std::uint64_t id) { reachability_handlers_.erase(id); }

void Client::schedule_probe() {
  probe_timer_ = after(probe_interval_, [this] {
    probe_timer_ = 0;
    probe();
    schedule_probe();
  });
}

void Client::probe() {
  if (probe_request_ != 0 || probe_interval_.count() == 0) return;
  last_probe_ = std::chrono::steady_clock::now();
  Request request;
  request.path = "/version";  // every authenticated identity may read it (system:public-info-viewer)
  request.timeout = probe_interval_;
  probe_request_ = send(std::move(request), [this](Response&& response) {
    probe_request_ = 0;
    if (response.status != 0) return;  // contact(), already
    const bool changed = reach_ != Reach::kUnreachable;
    reach_ = Reach::kUnreachable;
    notify({false, changed, response.transport_error});
  });
}

// After a request failed without an answer: probe now, unless the server is already known to be gone
// (the periodic probe finds it back) or a probe is under way; at most one a second.
void Client::probe_soon() {
  if (probe_interval_.count() == 0 || reach_ == Reach::kUnreachable || probe_request_ != 0 || probe_soon_timer_ != 0)
    return;
  const auto earliest = last_probe_ + std::chrono::seconds(1);
  const auto now = std::chrono::steady_clock::now();
  const auto delay = earliest > now ? std::chrono::duration_cast<std::chrono::milliseconds>(earliest - now)
                                    : std::chrono::milliseconds(0);
  probe_soon_timer_ = after(delay, [this] {
    probe_soon_timer_ = 0;
    probe();
  });
}

void Client::contact() {
  if (reach_ == Reach::kReachable) return;
  reach_ = Reach::kReachable;
  // Told from the loop, not from inside curl's write callback, so handlers may start requests.
  after(std::chrono::milliseconds(0), [this] {
    if (reach_ == Reach::kReachable) notify({true, true, {}});
  });
}

void Client::notify(const Reachability& reachability) {
  // A handler may add or remove handlers (a watcher going away): walk a copy of the ids.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, handler] : reachability_handlers_) ids.push_back(id);
  for (std::uint64_t id : ids) {
    auto it = reachability_handlers_.find(id);
    if (it != reachability_handlers_.end()) guarded("reachability handler", [&] { it->second(reachability); });
  }
}

}  // namespace kroute::agent::kube
