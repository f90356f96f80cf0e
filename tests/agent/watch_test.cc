#include <doctest.h>

#include "kube/watch_event.h"

using namespace kroute::agent::kube;

TEST_CASE("watch events: types, resourceVersion, bookmarks, 410 errors") {
  ParsedEvent added = parse_watch_event(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"12"}}})");
  REQUIRE(added.error == "");
  CHECK(added.event.type == EventType::kAdded);
  CHECK(added.event.resource_version == "12");
  CHECK(parse_watch_event(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"99"}}})").event.type ==
        EventType::kBookmark);
  ParsedEvent gone = parse_watch_event(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}})");
  REQUIRE(gone.error == "");
  CHECK(gone.event.type == EventType::kError);
  CHECK(gone.event.error_code == 410);
  CHECK(parse_watch_event(R"({"type":"ERROR","object":{"reason":"Expired"}})").event.error_code == 410);
  CHECK(parse_watch_event(R"({"type":"ERROR","object":{"code":500}})").event.error_code == 500);
  CHECK(parse_watch_event("not json").error.find("not JSON") != std::string::npos);
  CHECK(parse_watch_event(R"({"type":"SOMETHING","object":{}})").error == "unknown watch event type SOMETHING");
  CHECK(parse_watch_event(R"({"type":"ADDED"})").error == "watch event ADDED without an object");
}

TEST_CASE("line splitter: lines across chunks, empty lines, oversized lines dropped") {
  LineSplitter lines(10);
  CHECK(lines.feed("ab").empty());
  CHECK(lines.feed("c\nde\n\nf") == std::vector<std::string>{"abc", "de"});
  CHECK(lines.feed("g\n") == std::vector<std::string>{"fg"});
  CHECK(lines.feed("0123456789abc").empty());
  CHECK(lines.feed("def\nok\n") == std::vector<std::string>{"ok"});
  CHECK(lines.oversized() == 1);
}

TEST_CASE("watch events nested past the reader's depth limit, or with fields of the wrong type, are errors") {
  // jsoncpp throws past its stackLimit instead of failing the parse; a line of brackets must not end the agent.
  const std::string deep = R"({"type":"ADDED","object":{"metadata":{"name":)" + std::string(300, '[') + "}}}";
  ParsedEvent nested;
  CHECK_NOTHROW(nested = parse_watch_event(deep));
  CHECK(nested.error.find("not JSON") != std::string::npos);
  ParsedEvent odd;
  CHECK_NOTHROW(odd = parse_watch_event(R"({"type":"ERROR","object":{"code":"x","reason":{},"message":[1]}})"));
  CHECK(odd.error == "");
  CHECK(odd.event.error_code == 0);
  CHECK(odd.event.error_message == "");
}

TEST_CASE("a watch event whose metadata is not an object is read without throwing") {
  // Found by fuzz-objects: jsoncpp throws when a member is looked up in a string.
  ParsedEvent parsed;
  CHECK_NOTHROW(parsed = parse_watch_event(R"({"type":"ADDED","object":{"metadata":"x"}})"));
  CHECK(parsed.event.resource_version.empty());
  CHECK_NOTHROW(parsed = parse_watch_event(R"({"type":"MODIFIED","object":{"metadata":[1,2]}})"));
  CHECK(parsed.event.resource_version.empty());
}
