#include "table_publisher.h"

namespace kroute::agent {

std::unique_ptr<TablePublisher> TablePublisher::open(const PublisherOptions& options, std::string& error) {
  std::unique_ptr<Publisher> publisher = Publisher::open(options, error);
  if (!publisher) return nullptr;
  return std::unique_ptr<TablePublisher>(new TablePublisher(std::move(publisher)));
}

PublishOutcome TablePublisher::publish(CompiledTable&& table) {
  const auto started = std::chrono::steady_clock::now();
  PublishOutcome outcome;
  BuildResult build = build_snapshot(table.model);
  outcome.warnings = std::move(table.warnings);
  add_build_warnings(table, build, outcome.warnings);
  outcome.stats = build.stats;
  // The first table is always published: the directory may hold another agent's (or an old) table.
  if (published_once_ && same_routes(last_, build.bytes)) {
    outcome.generation = publisher_->generation();
  } else {
    PublishResult result = publisher_->publish(build.bytes);
    if (result.generation == 0) {
      outcome.error = result.error;
    } else {
      outcome.published = true;
      outcome.generation = result.generation;
      published_once_ = true;
      last_ = std::move(build.bytes);
    }
  }
  outcome.duration = std::chrono::steady_clock::now() - started;
  return outcome;
}

}  // namespace kroute::agent
