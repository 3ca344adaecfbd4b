#pragma once
// Reading the command's TOML files: parse errors and bad numbers become one
// clear message naming the file, line or key.

#include <fmt/core.h>

#include <toml++/toml.h>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vdtu::cli {

inline toml::table load_toml(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(fmt::format("{}: {} (line {})", path, e.description(), e.source().begin.line));
  }
}

template <class T>
T number(const toml::table& table, std::string_view key, T fallback) {
  const auto* node = table.get(key);
  if (node == nullptr) return fallback;
  const auto value = node->value<std::int64_t>();
  if (!value || *value < 0) throw std::runtime_error(fmt::format("'{}' must be a non-negative integer", key));
  return static_cast<T>(*value);
}

// A probability: a number (integer or float) from 0 to 1.
inline double probability(const toml::table& table, std::string_view key, double fallback) {
  const auto* node = table.get(key);
  if (node == nullptr) return fallback;
  const auto value = node->value<double>();
  if (!value || *value < 0 || *value > 1)
    throw std::runtime_error(fmt::format("'{}' must be a number from 0 to 1", key));
  return *value;
}

}  // namespace vdtu::cli
