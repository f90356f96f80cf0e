// Test helpers: JSON literals for Kubernetes objects.
#pragma once

#include <json/json.h>

#include <stdexcept>
#include <string>

#include "kube/watch_event.h"

inline Json::Value json(const std::string& text) {
  Json::Value value;
  std::string error;
  if (!kroute::agent::kube::parse_json(text, value, error)) throw std::runtime_error("bad test JSON: " + error + "\n" + text);
  return value;
}
