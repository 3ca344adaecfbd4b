#include "guest_memory.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace vdtu::net::vhost {
namespace {

// [start, start + length) inside [base, base + size), without overflow.
bool inside(std::uint64_t start, std::uint64_t length, std::uint64_t base, std::uint64_t size) {
  return length != 0 && start >= base && start - base < size && length <= size - (start - base);
}

}  // namespace

void GuestMemory::check(const RegionSpec& spec) const {
  if (regions_.size() >= kMaxRegions) throw std::invalid_argument("more than 8 memory regions");
  if (spec.size == 0) throw std::invalid_argument("a memory region of size 0");
  const auto last = spec.size - 1;
  if (spec.guest_address > UINT64_MAX - last || spec.user_address > UINT64_MAX - last ||
      spec.mmap_offset > UINT64_MAX - spec.size) {
    throw std::invalid_argument("a memory region that wraps around");
  }
  for (const auto& r : regions_) {
    if (spec.guest_address <= r.guest + (r.size - 1) && r.guest <= spec.guest_address + last) {
      throw std::invalid_argument("memory regions overlap");
    }
  }
}

void GuestMemory::add(const RegionSpec& spec, int fd) {
  check(spec);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::system_error(errno, std::generic_category(), "fstat memory fd");
  // Touching a page past the file's end raises SIGBUS: refuse such a region.
  if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
      static_cast<std::uint64_t>(st.st_size) < spec.mmap_offset + spec.size) {
    throw std::invalid_argument("a memory region larger than its file");
  }
  if (spec.mmap_offset + spec.size > SIZE_MAX) throw std::invalid_argument("a memory region too large");
  MappedRegion mapping(fd, static_cast<std::size_t>(spec.mmap_offset + spec.size));
  auto* host = mapping.data() + spec.mmap_offset;
  regions_.push_back({spec.guest_address, spec.size, spec.user_address, host, std::move(mapping)});
}

void GuestMemory::add_view(const RegionSpec& spec, std::span<std::byte> bytes) {
  check(spec);
  if (bytes.size() < spec.size) throw std::invalid_argument("a view smaller than its region");
  regions_.push_back({spec.guest_address, spec.size, spec.user_address, bytes.data(), MappedRegion()});
}

std::byte* GuestMemory::translate(std::uint64_t guest_address, std::uint64_t length) const {
  for (const auto& r : regions_) {
    if (inside(guest_address, length, r.guest, r.size)) return r.host + (guest_address - r.guest);
  }
  return nullptr;
}

std::byte* GuestMemory::translate_user(std::uint64_t user_address, std::uint64_t length) const {
  for (const auto& r : regions_) {
    if (inside(user_address, length, r.user, r.size)) return r.host + (user_address - r.user);
  }
  return nullptr;
}

}  // namespace vdtu::net::vhost
