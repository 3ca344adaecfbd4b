#include "report.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace vdtu::bench {
namespace {

constexpr int kPercentiles = 100;  // quantiles: every percentile, for a CDF

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<std::size_t>(std::lround(q * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

Result latency_result(std::string suite, std::string name, std::vector<double> samples_ns) {
  std::sort(samples_ns.begin(), samples_ns.end());
  Result r{std::move(suite),
           std::move(name),
           "us",
           percentile(samples_ns, 0.5) / 1000.0,
           percentile(samples_ns, 0.99) / 1000.0,
           samples_ns.size(),
           {},
           {},
           0};
  if (!samples_ns.empty()) {
    for (int q = 0; q <= kPercentiles; ++q)
      r.quantiles.push_back(percentile(samples_ns, q / static_cast<double>(kPercentiles)) / 1000.0);
  }
  return r;
}

Result rate_result(std::string suite, std::string name, std::string unit, double scale,
                   std::vector<double> samples_per_s) {
  std::sort(samples_per_s.begin(), samples_per_s.end());
  return {std::move(suite),
          std::move(name),
          std::move(unit),
          percentile(samples_per_s, 0.5) * scale,
          percentile(samples_per_s, 0.01) * scale,
          samples_per_s.size(),
          {},
          {},
          0};
}

Result against(Result figure, const Result& floor) {
  figure.floor = floor.name;
  figure.floor_median = floor.median;
  return figure;
}

void Reporter::add(const Result& r) {
  progress_.clear();
  ++results_;
  if (json_) {
    const auto quantiles = quantiles_ && !r.quantiles.empty()
                               ? fmt::format(R"(,"quantiles":[{:.4f}])", fmt::join(r.quantiles, ","))
                               : std::string{};
    std::string floor;
    if (!r.floor.empty()) {
      floor = fmt::format(R"(,"floor":"{}","floor_median":{:.4f},"ratio":{:.3f})", r.floor, r.floor_median,
                          r.ratio());
    }
    fmt::print(R"({{"suite":"{}","name":"{}","unit":"{}","median":{:.4f},"p99":{:.4f},"n":{}{}{}}})"
               "\n",
               r.suite, r.name, r.unit, r.median, r.p99, r.n, floor, quantiles);
  } else {
    if (!header_done_) {
      fmt::print("{:<10} {:<34} {:>12} {:>12} {:<8} {:>9} {:>7}  {}\n", "suite", "name", "median", "p99",
                 "unit", "n", "ratio", "floor");
      header_done_ = true;
    }
    const auto ratio = r.floor.empty() ? std::string() : fmt::format("{:.2f}x", r.ratio());
    fmt::print("{:<10} {:<34} {:>12.3f} {:>12.3f} {:<8} {:>9} {:>7}  {}\n", r.suite, r.name, r.median, r.p99,
               r.unit, r.n, ratio, r.floor);
  }
  (void)std::fflush(stdout);
}

void Reporter::note(const std::string& line) {
  progress_.clear();
  if (!json_) fmt::print("# {}\n", line);
}

void Reporter::progress(const std::string& what) {
  progress_.show(
      fmt::format("measuring {} ({} results so far, {} s)", what, results_, progress_.elapsed().count()));
}

}  // namespace vdtu::bench
