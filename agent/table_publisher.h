// Compiled table -> snapshot -> the table directory, only when the routes differ from the last
// published snapshot (generation and build time aside). Also what happens when the directory fails:
// a failed write is logged once (a reminder each minute), counted, and shown in readiness until a
// write succeeds; a table whose directory, control file or snapshot vanished is put back.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "builder.h"
#include "compiler.h"
#include "metrics.h"
#include "publisher.h"

namespace kroute::agent {

struct PublishOutcome {
  bool published = false;       // false: unchanged, or failed (then `error` is set)
  std::uint64_t generation = 0; // the table's generation now
  std::string error;
  std::vector<Warning> warnings;  // the compiler's and the builder's, sorted
  BuildStats stats;
  std::chrono::nanoseconds duration{0};
};

class TablePublisher {
 public:
  // `options`: directory, file mode and group of the snapshots (they hold private keys).
  static std::unique_ptr<TablePublisher> open(const PublisherOptions& options, Metrics& metrics, std::string& error);
  // A failed write sets `error` (already logged and counted here); the caller tries again later.
  PublishOutcome publish(const CompiledTable& table);
  // On a timer (every second): when nginx workers starting now would not find the published table
  // (its directory, control file or snapshot was removed or replaced), publish the same routes again.
  void keep_in_place();
  std::uint64_t generation() const { return publisher_->generation(); }

 private:
  TablePublisher(std::unique_ptr<Publisher> publisher, Metrics& metrics, std::string dir)
      : publisher_(std::move(publisher)), metrics_(metrics), dir_(std::move(dir)) {}
  void made_room(const PublishResult& result);
  void failed(const std::string& error);
  void recovered(std::uint64_t generation, const char* message);

  std::unique_ptr<Publisher> publisher_;
  Metrics& metrics_;
  std::string dir_;
  std::vector<std::byte> last_;  // the bytes of the last published snapshot
  bool published_once_ = false;
  // A spell of failed writes: its first error (logged), when it began, attempts, the last log line.
  std::string failing_error_;
  std::chrono::steady_clock::time_point failing_since_{};
  std::chrono::steady_clock::time_point last_report_{};
  std::uint64_t failed_attempts_ = 0;
  std::string missing_;  // why the table is being put back (logged once)
};

}  // namespace kroute::agent
