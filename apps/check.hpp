#pragma once
// Checks for test VPE programs: a failed check prints where and why and ends
// the program with an exit code derived from the line.

#include <fmt/core.h>

namespace vdtu::apps {

struct CheckFailed {
  int line;
};

}  // namespace vdtu::apps

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fmt::print(stderr, "{}: check failed at line {}: {}\n", __FILE__, __LINE__, #cond); \
      throw ::vdtu::apps::CheckFailed{__LINE__};                                          \
    }                                                                                     \
  } while (0)

#define CHECK_EQ_TEXT(expr, expected)                                                             \
  do {                                                                                            \
    const auto got_ = (expr);                                                                     \
    if (got_ != (expected)) {                                                                     \
      fmt::print(stderr, "{}: line {}: {} gave '{}', expected '{}'\n", __FILE__, __LINE__, #expr, \
                 to_string(got_), to_string(expected));                                           \
      throw ::vdtu::apps::CheckFailed{__LINE__};                                                  \
    }                                                                                             \
  } while (0)

#define CHECK_STATUS(expr, expected) CHECK_EQ_TEXT(expr, expected)
