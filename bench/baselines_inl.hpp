#pragma once

#include <chrono>

namespace vdtu::bench {

template <class Op>
std::vector<double> time_each(std::size_t iterations, std::size_t warmup, Op op) {
  for (std::size_t i = 0; i < warmup; ++i) op();
  std::vector<double> samples;
  samples.reserve(iterations);
  for (std::size_t i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    op();
    samples.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
  }
  return samples;
}

}  // namespace vdtu::bench
