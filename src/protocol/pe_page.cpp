#include "pe_page.hpp"

#include <atomic>

#include "common/sealed_memfd.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::size_t kPageBytes = 64;

std::atomic_ref<std::uint32_t> epoch_word(std::byte* page) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(page));
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

void PePage::bump_epoch() { epoch_word(region_.data()).fetch_add(1, std::memory_order_seq_cst); }

}  // namespace vdtu::dtu
