#include "kube/watcher.h"

#include "json_read.h"
#include "log.h"

namespace kroute::agent::kube {
namespace {

WatchEventKind metric_kind(EventType type) {
  switch (type) {
    case EventType::kAdded: return WatchEventKind::kAdded;
    case EventType::kModified: return WatchEventKind::kModified;
    case EventType::kDeleted: return WatchEventKind::kDeleted;
    default: return WatchEventKind::kBookmark;
  }
}

}  // namespace

Watcher::Watcher(Client& client, Kind kind, WatchSink& sink, Metrics& metrics, WatchOptions options)
    : client_(client),
      kind_(kind),
      info_(kind_info(kind)),
      sink_(sink),
      metrics_(metrics),
      options_(std::move(options)),
      backoff_(options_.backoff),
      random_(std::random_device{}()) {
  reachability_handler_ = client_.add_reachability_handler([this](const Reachability& reachability) {
    if (!reachability.changed) return;
    if (reachability.reachable) {
      backoff_.reset();  // the failures were the outage's: a watch that fails again now starts short
      resume();
    } else {
      interrupt(reachability.error);
    }
  });
}

Watcher::~Watcher() {
  client_.remove_reachability_handler(reachability_handler_);
  client_.cancel(request_);
  client_.cancel_timer(timer_);
}

void Watcher::start() { list(""); }

std::string Watcher::collection_path() const {
  std::string path = info_.api_prefix;
  if (info_.namespaced && !options_.ns.empty()) path += "/namespaces/" + url_encode(options_.ns);
  path += "/";
  path += info_.plural;
  return path;
}

void Watcher::list(std::string continue_token) {
  if (continue_token.empty()) {
    if (listing_) sink_.abort_list(kind_);
    listing_ = true;
    sink_.begin_list(kind_);
  }
  std::string path = collection_path() + "?limit=" + std::to_string(options_.page_size);
  if (!continue_token.empty()) path += "&continue=" + url_encode(continue_token);
  if (*info_.field_selector != '\0') path += "&fieldSelector=" + url_encode(info_.field_selector);
  Request request;
  request.path = std::move(path);
  request.timeout = std::chrono::seconds(60);
  request_ = client_.send(std::move(request), [this](Response&& response) { on_list(std::move(response)); });
}

void Watcher::on_list(Response&& response) {
  request_ = 0;
  if (!response.ok()) {
    sink_.abort_list(kind_);
    listing_ = false;
    // An expired continue token: the list must start over from the beginning.
    if (response.status == 410) {
      relist_soon("continue token expired");
      return;
    }
    retry_later(true, "list failed: " + response.describe());
    return;
  }
  Json::Value page;
  std::string error;
  if (!parse_json(response.body, page, error) || !page.isObject() || !page["items"].isArray()) {
    sink_.abort_list(kind_);
    listing_ = false;
    retry_later(true, "list response is not a list: " + error);
    return;
  }
  response.body.clear();
  response.body.shrink_to_fit();
  for (const Json::Value& item : page["items"]) sink_.listed(kind_, item);
  const std::string next = str(at(page, "metadata", "continue"));
  resource_version_ = str(at(page, "metadata", "resourceVersion"));
  page = Json::Value();
  if (!next.empty()) {
    list(next);
    return;
  }
  listing_ = false;
  if (!synced_) log::info("watch synced", {{"resource", info_.name}, {"resourceVersion", resource_version_}});
  synced_ = true;  // before end_list: the sink asks whether every watcher has synced
  sink_.end_list(kind_);
  watch();
}

void Watcher::watch() {
  std::uniform_int_distribution<long> spread(0, options_.timeout.count());
  const long timeout_seconds = options_.timeout.count() + spread(random_);
  std::string path = collection_path() + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                     std::to_string(timeout_seconds) + "&resourceVersion=" + url_encode(resource_version_);
  if (*info_.field_selector != '\0') path += "&fieldSelector=" + url_encode(info_.field_selector);
  Request request;
  request.path = std::move(path);
  request.stream = true;
  request.stall_timeout = std::chrono::seconds(timeout_seconds) + options_.silence_margin;
  lines_.reset();
  expired_ = false;
  stream_error_.clear();
  watch_started_ = std::chrono::steady_clock::now();
  watch_events_ = 0;
  log::debug("watch started", {{"resource", info_.name}, {"resourceVersion", resource_version_}});
  request_ = client_.send(
      std::move(request), [this](Response&& response) { on_watch_done(std::move(response)); },
      [this](std::string_view chunk) { return on_watch_chunk(chunk); });
}

bool Watcher::on_watch_chunk(std::string_view chunk) {
  const std::size_t oversized_before = lines_.oversized();
  for (const std::string& line : lines_.feed(chunk)) {
    ParsedEvent parsed = parse_watch_event(line);
    if (!parsed.error.empty()) {
      metrics_.bad_objects[Metrics::at(kind_)].fetch_add(1, std::memory_order_relaxed);
      log::warn("skipping a watch event that does not parse", {{"resource", info_.name}, {"error", parsed.error}});
      continue;
    }
    WatchEvent& event = parsed.event;
    if (event.type == EventType::kError) {
      if (event.error_code == 410) {
        expired_ = true;
      } else {
        stream_error_ = "watch error " + std::to_string(event.error_code) + ": " + event.error_message;
      }
      return false;
    }
    ++watch_events_;
    metrics_.events[Metrics::at(kind_)][static_cast<std::size_t>(metric_kind(event.type))].fetch_add(
        1, std::memory_order_relaxed);
    if (!event.resource_version.empty()) resource_version_ = event.resource_version;
    if (event.type != EventType::kBookmark) sink_.event(kind_, event.type, event.object);
  }
  if (lines_.oversized() != oversized_before) {
    metrics_.bad_objects[Metrics::at(kind_)].fetch_add(1, std::memory_order_relaxed);
    log::warn("skipping an oversized watch event", {{"resource", info_.name}});
  }
  return true;
}

void Watcher::on_watch_done(Response&& response) {
  request_ = 0;
  if (expired_ || response.status == 410) {
    relist_soon(expired_ ? "resourceVersion too old (ERROR 410 in the watch)" : "watch answered 410 Gone");
    return;
  }
  if (!stream_error_.empty()) {
    retry_later(false, stream_error_);
    return;
  }
  if (response.ok()) {
    // The server ended the watch at timeoutSeconds. A watch that ends at once with nothing in it is
    // a sick server: back off rather than spin.
    const auto lasted = std::chrono::steady_clock::now() - watch_started_;
    if (watch_events_ == 0 && lasted < std::chrono::seconds(1)) {
      retry_later(false, "watch ended immediately");
      return;
    }
    log::debug("watch ended by the server; watching again", {{"resource", info_.name}});
    watch();
    return;
  }
  retry_later(false, "watch failed: " + response.describe());
}

void Watcher::relist_soon(const std::string& why) {
  metrics_.relists[Metrics::at(kind_)].fetch_add(1, std::memory_order_relaxed);
  // Spread out: after a control-plane restart every watcher of every agent gets 410 at once.
  std::uniform_int_distribution<long> jitter(0, 1000);
  const std::chrono::milliseconds delay(jitter(random_));
  log::info("relisting", {{"resource", info_.name}, {"reason", why}, {"delay_ms", delay.count()}});
  retry_after(delay, true);
}

void Watcher::retry_later(bool relist, const std::string& why) {
  const std::chrono::milliseconds delay = backoff_.next(std::chrono::steady_clock::now());
  if (relist) {
    metrics_.relists[Metrics::at(kind_)].fetch_add(1, std::memory_order_relaxed);
  } else {
    metrics_.watch_restarts[Metrics::at(kind_)].fetch_add(1, std::memory_order_relaxed);
  }
  log::warn(relist ? "list failed; retrying" : "watch interrupted; restarting",
            {{"resource", info_.name}, {"error", why}, {"retry_in_ms", delay.count()}});
  retry_after(delay, relist);
}

void Watcher::retry_after(std::chrono::milliseconds delay, bool relist) {
  client_.cancel_timer(timer_);
  timer_relists_ = relist;
  timer_ = client_.after(delay, [this, relist] {
    timer_ = 0;
    if (relist) {
      list("");
    } else {
      watch();
    }
  });
}

// The API server stopped answering probes. A stream on a dark connection would only be noticed when its
// silence limit runs out (minutes): give the request up and retry with backoff, through new connections.
void Watcher::interrupt(const std::string& why) {
  if (request_ == 0) return;  // already waiting to retry
  client_.cancel(request_);
  request_ = 0;
  const bool relist = listing_;
  if (listing_) {
    sink_.abort_list(kind_);
    listing_ = false;
  }
  retry_later(relist, "the API server does not answer: " + why);
}

// The API server answers again: a retry still waiting out a long backoff starts now, spread over a
// second so that many watchers (and agents) do not all come back at the same instant.
void Watcher::resume() {
  if (timer_ == 0) return;
  std::uniform_int_distribution<long> jitter(0, 1000);
  const std::chrono::milliseconds delay(jitter(random_));
  log::debug("retrying sooner: the API server answers again", {{"resource", info_.name}, {"delay_ms", delay.count()}});
  retry_after(delay, timer_relists_);
}

}  // namespace kroute::agent::kube
