// Compiled table -> snapshot -> the table directory, only when the routes differ from the last
// published snapshot (generation and build time aside).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "builder.h"
#include "compiler.h"
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
  static std::unique_ptr<TablePublisher> open(const PublisherOptions& options, std::string& error);
  PublishOutcome publish(CompiledTable&& table);
  std::uint64_t generation() const { return publisher_->generation(); }

 private:
  explicit TablePublisher(std::unique_ptr<Publisher> publisher) : publisher_(std::move(publisher)) {}
  std::unique_ptr<Publisher> publisher_;
  std::vector<std::byte> last_;  // the bytes of the last published snapshot
  bool published_once_ = false;
};

}  // namespace kroute::agent
