// Reading JSON from the API server without exceptions. jsoncpp's operator[] and get() throw on a value
// that is not an object, asString() on one that is not a scalar, asInt() on a number out of range: an
// object of an unexpected shape must be read as far as it goes, never end the agent. Every reader of API
// server JSON goes through these.
#pragma once

#include <json/json.h>

#include <cstdint>
#include <string>

namespace kroute::agent {

// at(v, "a", "b") is v.a.b, or null when any step is missing or not an object.
inline const Json::Value& at(const Json::Value& v) { return v; }
template <typename... Keys>
const Json::Value& at(const Json::Value& v, const char* key, Keys... rest) {
  return at(v.isObject() ? v[key] : Json::Value::nullSingleton(), rest...);
}

// The elements of v when it is an array; nothing otherwise.
inline const Json::Value& elements(const Json::Value& v) {
  static const Json::Value empty(Json::arrayValue);
  return v.isArray() ? v : empty;
}

// v when it is a string; "" for anything else.
inline std::string str(const Json::Value& v) { return v.isString() ? v.asString() : std::string(); }

// v when it is an integer in [low, high]; `fallback` for anything else.
inline std::int64_t integer(const Json::Value& v, std::int64_t low, std::int64_t high, std::int64_t fallback) {
  if (!v.isInt64()) return fallback;
  const Json::Int64 n = v.asInt64();
  return n >= low && n <= high ? n : fallback;
}

}  // namespace kroute::agent
