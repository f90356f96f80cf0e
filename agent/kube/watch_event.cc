#include "kube/watch_event.h"

#include <memory>

namespace kroute::agent::kube {

bool parse_json(std::string_view text, Json::Value& out, std::string& error) {
  Json::CharReaderBuilder builder;
  builder["collectComments"] = false;
  builder["stackLimit"] = 200;
  std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
  // jsoncpp throws, rather than fail the parse, for input nested deeper than stackLimit.
  try {
    return reader->parse(text.data(), text.data() + text.size(), &out, &error);
  } catch (const Json::Exception& e) {
    error = e.what();
    return false;
  }
}

std::string to_json(const Json::Value& value) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = "";
  return Json::writeString(builder, value);
}

bool is_expired(int code, const std::string& reason) {
  return code == 410 || reason == "Expired" || reason == "Gone";
}

ParsedEvent parse_watch_event(std::string_view line) {
  ParsedEvent parsed;
  Json::Value root;
  if (!parse_json(line, root, parsed.error)) {
    parsed.error = "watch event is not JSON: " + parsed.error;
    return parsed;
  }
  if (!root.isObject() || !root["type"].isString()) {
    parsed.error = "watch event without a type";
    return parsed;
  }
  const std::string type = root["type"].asString();
  WatchEvent& event = parsed.event;
  if (type == "ADDED") {
    event.type = EventType::kAdded;
  } else if (type == "MODIFIED") {
    event.type = EventType::kModified;
  } else if (type == "DELETED") {
    event.type = EventType::kDeleted;
  } else if (type == "BOOKMARK") {
    event.type = EventType::kBookmark;
  } else if (type == "ERROR") {
    event.type = EventType::kError;
  } else {
    parsed.error = "unknown watch event type " + type;
    return parsed;
  }
  event.object = std::move(root["object"]);
  if (!event.object.isObject()) {
    parsed.error = "watch event " + type + " without an object";
    return parsed;
  }
  if (event.type == EventType::kError) {
    const Json::Value& code = event.object["code"];
    const Json::Value& reason_value = event.object["reason"];
    const Json::Value& message = event.object["message"];
    event.error_code = code.isInt() ? code.asInt() : 0;
    const std::string reason = reason_value.isString() ? reason_value.asString() : std::string();
    event.error_message = message.isString() ? message.asString() : std::string();
    if (is_expired(event.error_code, reason)) event.error_code = 410;
    return parsed;
  }
  // jsoncpp throws when a member is looked up in a value that is not an object (metadata: "x").
  const Json::Value* metadata = event.object.find("metadata", "metadata" + 8);
  if (metadata != nullptr && metadata->isObject()) {
    const Json::Value& rv = (*metadata)["resourceVersion"];
    if (rv.isString()) event.resource_version = rv.asString();
  }
  return parsed;
}

std::vector<std::string> LineSplitter::feed(std::string_view chunk) {
  std::vector<std::string> lines;
  while (!chunk.empty()) {
    const std::size_t newline = chunk.find('\n');
    const std::string_view piece = chunk.substr(0, newline);
    if (!skipping_) {
      if (partial_.size() + piece.size() > max_line_) {
        skipping_ = true;
        partial_.clear();
        partial_.shrink_to_fit();
        ++oversized_;
      } else {
        partial_.append(piece);
      }
    }
    if (newline == std::string_view::npos) break;
    if (!skipping_ && !partial_.empty()) lines.push_back(std::move(partial_));
    partial_.clear();
    skipping_ = false;
    chunk.remove_prefix(newline + 1);
  }
  return lines;
}

}  // namespace kroute::agent::kube
