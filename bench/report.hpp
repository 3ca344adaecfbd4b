#pragma once
// Benchmark results: a table for people, or one JSON object per line
// {"suite","name","unit","median","p99","n"} for scripts. A figure measured
// against a same-run floor (see token_ring.hpp) adds
// "floor" (the floor's name), "floor_median" and "ratio" (median / floor_median).

#include <cstdint>
#include <string>
#include <vector>

#include "common/progress_line.hpp"

namespace vdtu::bench {

struct Result {
  std::string suite;
  std::string name;
  std::string unit;
  double median = 0;
  double p99 = 0;  // for rates: the rate that 99 % of samples beat (the low tail)
  std::uint64_t n = 0;
  // Latency results: the 0th, 1st, ..., 100th percentile (in `unit`), for CDF plots.
  std::vector<double> quantiles;
  std::string floor;  // empty: no floor
  double floor_median = 0;
  [[nodiscard]] double ratio() const { return floor_median > 0 ? median / floor_median : 0; }
};

// `figure` measured against `floor` (a result of the same run).
Result against(Result figure, const Result& floor);

// Latency samples in nanoseconds -> result in microseconds.
Result latency_result(std::string suite, std::string name, std::vector<double> samples_ns);
// Rate samples (per second) -> result in the given unit (e.g. "Mmsg/s", scale 1e-6).
Result rate_result(std::string suite, std::string name, std::string unit, double scale,
                   std::vector<double> samples_per_s);

class Reporter {
 public:
  // Table mode on a terminal also shows what is being measured on a line of
  // its own, overwritten as the work goes on (never with --json or piped).
  // `quantiles`: JSON objects of latency results also carry "quantiles".
  explicit Reporter(bool json, bool quantiles = false)
      : json_(json), quantiles_(quantiles), progress_(!json) {}
  void add(const Result& r);
  void note(const std::string& line);  // context printed in table mode only
  // "measuring WHAT (N results, T s)" on the progress line.
  void progress(const std::string& what);

 private:
  bool json_;
  bool quantiles_;
  bool header_done_ = false;
  std::uint64_t results_ = 0;
  ProgressLine progress_;
};

}  // namespace vdtu::bench
