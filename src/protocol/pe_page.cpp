#include "pe_page.hpp"

#include <array>
#include <atomic>
#include <cstring>

#include "common/futex.hpp"
#include "common/sealed_memfd.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kEpochOffset = 0;
constexpr std::size_t kCountsOffset = 1 * kLine;
constexpr std::size_t kSleepingOffset = 2 * kLine;
constexpr std::size_t kAnswerIdOffset = 3 * kLine;  // the futex an asking PE sleeps on
constexpr std::size_t kAnswerStatusOffset = kAnswerIdOffset + 4;
constexpr std::size_t kAnswerPeOffset = kAnswerIdOffset + 8;
constexpr std::size_t kNodeSleepingOffset = 4 * kLine;
constexpr std::size_t kPostedOffset = 5 * kLine;
constexpr std::size_t kRequestOffset = PePage::kRequestOffset;
static_assert(kRequestOffset == 6 * kLine);
constexpr std::size_t kPageBytes = kRequestOffset + (sizeof(ControlRequest) + kLine - 1) / kLine * kLine;
constexpr std::size_t kCountWords = 4;

std::atomic_ref<std::uint64_t> count_word(std::byte* page, std::size_t i) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(page + kCountsOffset + 8 * i));
}

std::uint32_t* raw_word(std::byte* page, std::size_t offset) {
  return reinterpret_cast<std::uint32_t*>(page + offset);
}

std::atomic_ref<std::uint32_t> word_at(std::byte* page, std::size_t offset) {
  return std::atomic_ref<std::uint32_t>(*raw_word(page, offset));
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
  return word_at(region_.data(), kEpochOffset).load(std::memory_order_seq_cst);
}

// seq_cst: the announcement is ordered before the PE's last look at the epoch,
// and the node's epoch bump before its look here (as for the doorbell's word).
void PePage::announce_sleep(Sleeper sleeper) {
  const auto word = static_cast<std::uint32_t>(sleeper.what) | (std::uint32_t{sleeper.ep} << 8);
  word_at(region_.data(), kSleepingOffset).store(word, std::memory_order_seq_cst);
}

Sleeper PePage::sleeper() const {
  const auto word = word_at(region_.data(), kSleepingOffset).load(std::memory_order_seq_cst);
  const auto what = static_cast<std::uint8_t>(word & 0xff);
  if (what > static_cast<std::uint8_t>(SleepingFor::kAnswer)) return {SleepingFor::kMessages, 0};
  return {static_cast<SleepingFor>(what), static_cast<EpId>(word >> 8)};
}

// The request is plain bytes, published by the id stored after it (seq_cst:
// ordered, too, before the look at node_sleeping, as the node's flag is
// before its last look at the id).
bool PePage::post_request(const ControlRequest& request, std::uint32_t id) {
  std::memcpy(region_.data() + kRequestOffset, &request, sizeof(request));
  word_at(region_.data(), kPostedOffset).store(id, std::memory_order_seq_cst);
  return word_at(region_.data(), kNodeSleepingOffset).load(std::memory_order_seq_cst) != 0;
}

bool PePage::has_request(std::uint32_t seen) const {
  return word_at(region_.data(), kPostedOffset).load(std::memory_order_seq_cst) != seen;
}

std::optional<ControlRequest> PePage::take_request(std::uint32_t& seen) const {
  const auto posted = word_at(region_.data(), kPostedOffset).load(std::memory_order_acquire);
  if (posted == seen) return std::nullopt;
  seen = posted;
  ControlRequest copy;
  std::memcpy(&copy, region_.data() + kRequestOffset, sizeof(copy));
  return copy;
}

bool PePage::post_answer(const MailboxAnswer& answer) {
  auto* page = region_.data();
  word_at(page, kAnswerStatusOffset)
      .store(static_cast<std::uint32_t>(answer.status), std::memory_order_relaxed);
  word_at(page, kAnswerPeOffset).store(answer.pe, std::memory_order_relaxed);
  word_at(page, kAnswerIdOffset).store(answer.id, std::memory_order_seq_cst);
  return sleeper().what == SleepingFor::kAnswer;
}

void PePage::wake_answer_sleeper() { detail::futex_wake_all(raw_word(region_.data(), kAnswerIdOffset)); }

MailboxAnswer PePage::answer() const {
  auto* page = region_.data();
  MailboxAnswer a;
  a.id = word_at(page, kAnswerIdOffset).load(std::memory_order_acquire);
  a.status = static_cast<Status>(word_at(page, kAnswerStatusOffset).load(std::memory_order_relaxed));
  a.pe = static_cast<PeId>(word_at(page, kAnswerPeOffset).load(std::memory_order_relaxed));
  return a;
}

void PePage::sleep_for_answer(std::uint32_t id, std::chrono::nanoseconds timeout) {
  auto answer_word = word_at(region_.data(), kAnswerIdOffset);
  const auto seen = answer_word.load(std::memory_order_seq_cst);
  if (seen == id) return;
  announce_sleep({SleepingFor::kAnswer, 0});
  if (answer_word.load(std::memory_order_seq_cst) == seen)
    detail::futex_wait(raw_word(region_.data(), kAnswerIdOffset), seen, timeout);
  announce_sleep({});
}

void PePage::set_node_sleeping(bool sleeping) {
  word_at(region_.data(), kNodeSleepingOffset).store(sleeping ? 1 : 0, std::memory_order_seq_cst);
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

void PePage::announce(std::uint32_t messages) {
  word_at(region_.data(), kEpochOffset).fetch_add(messages, std::memory_order_seq_cst);
}

}  // namespace vdtu::dtu
