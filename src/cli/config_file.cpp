#include "config_file.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace vdtu::cli {
namespace {

constexpr std::size_t kShownChars = 40;

// Control characters escaped (never a terminal control sequence from a
// file), long strings cut.
std::string escaped(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == kShownChars) return out + "...";
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Appending instead of `"\"" + escaped(s)`: g++ 12 at -O3 reports a false
// -Wrestrict on the prepend.
std::string quoted(std::string_view s) {
  std::string out{'"'};
  out += escaped(s);
  out += '"';
  return out;
}

}  // namespace

std::string found(const toml::node& value) {
  switch (value.type()) {
    case toml::node_type::string: return "the string " + shown(value);
    case toml::node_type::integer: return "the integer " + shown(value);
    case toml::node_type::floating_point: return "the float " + shown(value);
    case toml::node_type::boolean: return "the boolean " + shown(value);
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

std::string shown(const toml::node& value) {
  if (const auto* s = value.as_string()) return quoted(s->get());
  if (const auto* i = value.as_integer()) return std::to_string(i->get());
  if (const auto* f = value.as_floating_point()) return fmt::format("{}", f->get());
  if (const auto* b = value.as_boolean()) return b->get() ? "true" : "false";
  return found(value);
}

ConfigFile::ConfigFile(std::string path) : path_(std::move(path)) {
  try {
    root_ = toml::parse_file(path_);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(fmt::format("{}:{}: {}", path_, e.source().begin.line, e.description()));
  }
}

void ConfigFile::mistake(const toml::source_region& where, std::string_view what) {
  mistakes_.push_back(fmt::format("{}:{}: {}", path_, where.begin.line, what));
}

void ConfigFile::throw_mistakes() const {
  if (!mistakes_.empty()) throw std::runtime_error(fmt::format("{}", fmt::join(mistakes_, "\n")));
}

ConfigTable::ConfigTable(ConfigFile& file, const toml::table& table, std::string name,
                         std::vector<std::string_view> known)
    : file_(file), table_(table), name_(std::move(name)) {
  for (auto&& [key, value] : table_) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    file_.mistake(key.source(), fmt::format("{}{}: unknown key (known: {})", name_.empty() ? "" : name_ + " ",
                                            escaped(key.str()), fmt::join(known, ", ")));
  }
}

void ConfigTable::mistake(std::string_view key, std::string_view what) {
  const auto* value = table_.get(key);
  const auto prefix = name_.empty() ? std::string{} : name_ + " ";
  file_.mistake(value != nullptr ? value->source() : table_.source(),
                fmt::format("{}{}: {}", prefix, key, what));
}

template <class T>
const toml::value<T>* ConfigTable::typed(std::string_view key, std::string_view expected) {
  const auto* value = table_.get(key);
  if (value == nullptr) return nullptr;
  const auto* typed_value = value->as<T>();
  if (typed_value == nullptr) mistake(key, fmt::format("expected {}, found {}", expected, found(*value)));
  return typed_value;
}

std::optional<std::int64_t> ConfigTable::integer(std::string_view key, std::int64_t min, std::int64_t max) {
  const auto* value = typed<std::int64_t>(key, "an integer");
  if (value == nullptr) return std::nullopt;
  const auto v = value->get();
  if (v < min || v > max) {
    mistake(key, fmt::format("{} is out of range ({} to {})", v, min, max));
    return std::nullopt;
  }
  return v;
}

double ConfigTable::number(std::string_view key, double min, double max, double fallback,
                           std::string_view what) {
  const auto* value = table_.get(key);
  if (value == nullptr) return fallback;
  double v = 0;
  if (const auto* i = value->as_integer()) {
    v = static_cast<double>(i->get());
  } else if (const auto* f = value->as_floating_point()) {
    v = f->get();
  } else {
    mistake(key, fmt::format("expected a number ({}), found {}", what, found(*value)));
    return fallback;
  }
  if (!std::isfinite(v) || v < min || v > max) {
    mistake(key, fmt::format("{} is out of range ({}, {} to {})", shown(*value), what, min, max));
    return fallback;
  }
  return v;
}

bool ConfigTable::boolean(std::string_view key, bool fallback) {
  const auto* value = typed<bool>(key, "true or false");
  return value != nullptr ? value->get() : fallback;
}

std::string ConfigTable::string(std::string_view key, std::string fallback) {
  const auto* value = typed<std::string>(key, "a string");
  if (value == nullptr) return fallback;
  if (value->get().empty()) {
    mistake(key, "empty");
    return fallback;
  }
  return value->get();
}

std::vector<std::string> ConfigTable::strings(std::string_view key) {
  std::vector<std::string> out;
  const auto* list = array(key, "an array of strings");
  if (list == nullptr) return out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& element = *list->get(i);
    if (const auto* s = element.as_string()) {
      out.push_back(s->get());
    } else {
      file_.mistake(element.source(), fmt::format("{}{}[{}]: expected a string, found {}",
                                                  name_.empty() ? "" : name_ + " ", key, i, found(element)));
    }
  }
  return out;
}

const toml::array* ConfigTable::array(std::string_view key, std::string_view expected) {
  const auto* value = table_.get(key);
  if (value == nullptr) return nullptr;
  const auto* list = value->as_array();
  if (list == nullptr) mistake(key, fmt::format("expected {}, found {}", expected, found(*value)));
  return list;
}

const toml::table* ConfigTable::table(std::string_view key) {
  const auto* value = table_.get(key);
  if (value == nullptr) return nullptr;
  const auto* t = value->as_table();
  if (t == nullptr) mistake(key, fmt::format("expected a table ([{}]), found {}", key, found(*value)));
  return t;
}

}  // namespace vdtu::cli
