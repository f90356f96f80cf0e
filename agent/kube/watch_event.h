// Watch streams: newline-delimited JSON events as the API server sends them, split into lines across
// arbitrary chunk boundaries and parsed into typed events.
#pragma once

#include <json/json.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kroute::agent::kube {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  EventType type = EventType::kError;
  Json::Value object;
  std::string resource_version;  // object.metadata.resourceVersion
  int error_code = 0;            // ERROR events: the Status code (410: resourceVersion too old)
  std::string error_message;
};

struct ParsedEvent {
  WatchEvent event;
  std::string error;  // empty on success
};

ParsedEvent parse_watch_event(std::string_view line);

// Whether a Status (from an ERROR event or an error response) means "start over with a LIST": 410 Gone,
// or reason Expired/Gone.
bool is_expired(int code, const std::string& reason);

// Splits a byte stream into lines. A line longer than `max_line` is dropped (and reported) rather than
// buffered without bound.
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line = 64u << 20) : max_line_(max_line) {}
  // Appends `chunk`; returns the complete lines (without the newline). `oversized` counts lines dropped.
  std::vector<std::string> feed(std::string_view chunk);
  std::size_t oversized() const { return oversized_; }
  void reset() {
    partial_.clear();
    skipping_ = false;
  }

 private:
  std::size_t max_line_;
  std::string partial_;
  bool skipping_ = false;
  std::size_t oversized_ = 0;
};

// The agent's JSON reader and writer (compact, for request bodies).
bool parse_json(std::string_view text, Json::Value& out, std::string& error);
std::string to_json(const Json::Value& value);

}  // namespace kroute::agent::kube
