#include "table_publisher.h"

#include "log.h"

namespace kroute::agent {

namespace {

constexpr std::chrono::seconds kReminder{60};

long long seconds_since(std::chrono::steady_clock::time_point then) {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - then).count();
}

}  // namespace

std::unique_ptr<TablePublisher> TablePublisher::open(const PublisherOptions& options, Metrics& metrics,
                                                     std::string& error) {
  std::unique_ptr<Publisher> publisher = Publisher::open(options, error);
  if (!publisher) return nullptr;
  return std::unique_ptr<TablePublisher>(new TablePublisher(std::move(publisher), metrics, options.dir));
}

PublishOutcome TablePublisher::publish(const CompiledTable& table) {
  const auto started = std::chrono::steady_clock::now();
  PublishOutcome outcome;
  BuildResult build = build_snapshot(table.model);
  outcome.warnings = table.warnings;
  add_build_warnings(table, build, outcome.warnings);
  outcome.stats = build.stats;
  // The first table is always published: the directory may hold another agent's (or an old) table.
  if (published_once_ && same_routes(last_, build.bytes)) {
    outcome.generation = publisher_->generation();
    // A change that could not be written was undone: what nginx serves is current again.
    if (!failing_error_.empty()) recovered(outcome.generation, "the published route table is current again");
  } else {
    PublishResult result = publisher_->publish(build.bytes);
    if (result.made_room) made_room(result);
    if (result.generation == 0) {
      outcome.error = result.error;
      outcome.generation = publisher_->generation();
      failed(result.error);
    } else {
      outcome.published = true;
      outcome.generation = result.generation;
      published_once_ = true;
      last_ = std::move(build.bytes);
      recovered(result.generation, "route table publishing works again");
    }
  }
  outcome.duration = std::chrono::steady_clock::now() - started;
  return outcome;
}

void TablePublisher::keep_in_place() {
  if (!published_once_) return;
  const std::string missing = publisher_->missing();
  if (missing.empty()) {
    missing_.clear();
    return;
  }
  if (missing != missing_) {
    log::warn("the published route table is gone from its directory; publishing it again",
              {{"dir", dir_}, {"reason", missing}});
    missing_ = missing;
  }
  PublishResult result = publisher_->publish(last_);
  if (result.made_room) made_room(result);
  if (result.generation == 0) {
    failed(result.error);
    return;
  }
  metrics_.table_repairs.fetch_add(1, std::memory_order_relaxed);
  metrics_.publishes.fetch_add(1, std::memory_order_relaxed);
  metrics_.generation.store(result.generation, std::memory_order_relaxed);
  log::info("route table put back", {{"dir", dir_}, {"generation", result.generation}});
  missing_.clear();
  recovered(result.generation, "route table publishing works again");
}

void TablePublisher::failed(const std::string& error) {
  metrics_.publish_errors.fetch_add(1, std::memory_order_relaxed);
  metrics_.table_publish_failing.store(true, std::memory_order_relaxed);
  ++failed_attempts_;
  const auto now = std::chrono::steady_clock::now();
  if (failing_error_.empty()) failing_since_ = now;
  if (error != failing_error_) {
    log::error("cannot publish the route table; nginx keeps serving the last one; retrying",
               {{"dir", dir_}, {"error", error}, {"serving_generation", publisher_->generation()}});
    failing_error_ = error;
    last_report_ = now;
  } else if (now - last_report_ >= kReminder) {
    log::warn("the route table still cannot be published",
              {{"dir", dir_}, {"error", error}, {"failed_attempts", failed_attempts_},
               {"for_s", seconds_since(failing_since_)}});
    last_report_ = now;
  }
}

void TablePublisher::made_room(const PublishResult& result) {
  metrics_.table_dir_full.fetch_add(1, std::memory_order_relaxed);
  log::warn("the table directory is full; removed the older snapshots to make room (raise its size limit: "
            "the chart's table.sizeLimit)",
            {{"dir", dir_}, {"published", result.generation != 0}, {"serving_generation", publisher_->generation()}});
}

void TablePublisher::recovered(std::uint64_t generation, const char* message) {
  if (!failing_error_.empty()) {
    log::info(message, {{"dir", dir_}, {"generation", generation}, {"failed_attempts", failed_attempts_},
               {"after_s", seconds_since(failing_since_)}});
  }
  failing_error_.clear();
  failed_attempts_ = 0;
  metrics_.table_publish_failing.store(false, std::memory_order_relaxed);
}

}  // namespace kroute::agent
