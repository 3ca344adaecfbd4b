#include "pe_page.hpp"

#include <array>
#include <atomic>

#include "common/sealed_memfd.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::size_t kPageBytes = 192;
constexpr std::size_t kCountsOffset = 64;     // line 1
constexpr std::size_t kSleepingOffset = 128;  // line 2
constexpr std::size_t kCountWords = 4;

std::atomic_ref<std::uint64_t> count_word(std::byte* page, std::size_t i) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(page + kCountsOffset + 8 * i));
}

std::atomic_ref<std::uint32_t> epoch_word(std::byte* page) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(page));
}

std::atomic_ref<std::uint32_t> sleeping_word(std::byte* page) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(page + kSleepingOffset));
}

}  // namespace

PePage PePage::create() {
  UniqueFd fd = make_sealed_memfd("vdtu-pe-page", kPageBytes);
  MappedRegion region(fd.get(), kPageBytes);
  return {std::move(fd), std::move(region)};
}

PePage PePage::attach(UniqueFd fd) {
  check_sealed_memfd(fd.get(), kPageBytes, "PE page");
  MappedRegion region(fd.get(), kPageBytes);
  return {std::move(fd), std::move(region)};
}

std::uint32_t PePage::config_epoch() const {
  return epoch_word(region_.data()).load(std::memory_order_seq_cst);
}

// seq_cst: the announcement is ordered before the PE's last look at the epoch,
// and the node's epoch bump before its look here (as for the doorbell's word).
void PePage::announce_sleep(Sleeper sleeper) {
  const auto word = static_cast<std::uint32_t>(sleeper.what) | (std::uint32_t{sleeper.ep} << 8);
  sleeping_word(region_.data()).store(word, std::memory_order_seq_cst);
}

Sleeper PePage::sleeper() const {
  const auto word = sleeping_word(region_.data()).load(std::memory_order_seq_cst);
  const auto what = static_cast<std::uint8_t>(word & 0xff);
  if (what > static_cast<std::uint8_t>(SleepingFor::kEndpoint)) return {SleepingFor::kMessages, 0};
  return {static_cast<SleepingFor>(what), static_cast<EpId>(word >> 8)};
}

void PePage::publish(const PublishedCounts& counts) {
  const std::array<std::uint64_t, kCountWords> words = {counts.capabilities, counts.vpes, counts.syscalls,
                                                        counts.kernelcalls};
  for (std::size_t i = 0; i < kCountWords; ++i)
    count_word(region_.data(), i).store(words[i], std::memory_order_relaxed);
}

PublishedCounts PePage::published() const {
  std::array<std::uint64_t, kCountWords> w{};
  for (std::size_t i = 0; i < kCountWords; ++i)
    w[i] = count_word(region_.data(), i).load(std::memory_order_relaxed);
  return {w[0], w[1], w[2], w[3]};
}

void PePage::bump_epoch() { epoch_word(region_.data()).fetch_add(1, std::memory_order_seq_cst); }

}  // namespace vdtu::dtu
