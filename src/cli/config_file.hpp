#pragma once
// Reading the command's TOML files strictly: every key known, every value of
// the type asked for and within the range the code supports. A mistake
// becomes one line, "FILE:LINE: [TABLE] KEY: what is wrong"; reading goes on
// (with the default in place of a bad value) so that one run reports all of
// a file's mistakes, which the caller then throws together.

#include <fmt/core.h>

#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vdtu::cli {

class ConfigFile {
 public:
  // Throws std::runtime_error ("FILE:LINE: ...") if it is not TOML.
  explicit ConfigFile(std::string path);

  [[nodiscard]] const toml::table& root() const { return root_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  void mistake(const toml::source_region& where, std::string_view what);
  [[nodiscard]] bool clean() const { return mistakes_.empty(); }
  // Throws std::runtime_error with one line per mistake, if there were any.
  void throw_mistakes() const;

 private:
  std::string path_;
  toml::table root_;
  std::vector<std::string> mistakes_;
};

// One table of a file: the top level, [node], the 2nd [[peer]], ... Keys not
// in `known` are mistakes (typos); the getters report missing, mistyped and
// out-of-range values and return the fallback.
class ConfigTable {
 public:
  ConfigTable(ConfigFile& file, const toml::table& table, std::string name,
              std::vector<std::string_view> known);

  [[nodiscard]] bool has(std::string_view key) const { return table_.contains(key); }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const toml::source_region& source() const { return table_.source(); }

  // An integer from min to max.
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  template <class T>
  T integer(std::string_view key, std::int64_t min, std::int64_t max, T fallback) {
    static_assert(std::numeric_limits<T>::is_integer);
    const auto v = integer(key, min, max);
    return v ? static_cast<T>(*v) : fallback;
  }
  // Like integer, but a missing key is a mistake too.
  template <class T>
  T required_integer(std::string_view key, std::int64_t min, std::int64_t max) {
    if (!has(key)) mistake(key, "missing");
    return integer<T>(key, min, max, static_cast<T>(min));
  }
  // A finite number (integer or float) from min to max; `what` says what it
  // is ("a probability").
  double number(std::string_view key, double min, double max, double fallback, std::string_view what);
  bool boolean(std::string_view key, bool fallback);
  // A string; an empty one is a mistake.
  std::string string(std::string_view key, std::string fallback);
  // An array of strings.
  std::vector<std::string> strings(std::string_view key);
  // An array or a table, nullptr if missing or (a mistake) of another type.
  const toml::array* array(std::string_view key, std::string_view expected = "an array");
  const toml::table* table(std::string_view key);

  // A mistake about the value of `key` (or the table itself, if it has no such key).
  void mistake(std::string_view key, std::string_view what);

 private:
  // The value of `key` if present and of type T; a mistake if of another type.
  template <class T>
  const toml::value<T>* typed(std::string_view key, std::string_view expected);

  ConfigFile& file_;
  const toml::table& table_;
  std::string name_;
};

// Each element of the array `key` of the top level as a table ([[key]]).
template <class Read>
void each_table(ConfigFile& file, ConfigTable& root, std::string_view key, Read read) {
  const auto* list = root.array(key, fmt::format("tables ([[{}]])", key));
  if (list == nullptr) return;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto name = fmt::format("[[{}]] {}", key, i + 1);
    if (const auto* t = list->get(i)->as_table()) {
      read(*t, name);
    } else {
      file.mistake(list->get(i)->source(), name + ": expected a table");
    }
  }
}

// How a value is shown in a message: numbers and booleans as written, strings
// quoted with control characters escaped and long ones cut.
std::string shown(const toml::node& value);
// "the string \"soon\"", "an array": a value and its type, for messages.
std::string found(const toml::node& value);

}  // namespace vdtu::cli
