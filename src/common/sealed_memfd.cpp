#include "sealed_memfd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace vdtu {
namespace {

constexpr unsigned kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

UniqueFd make_sealed_memfd(const char* name, std::size_t bytes) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw_errno("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throw_errno("ftruncate");
  if (::fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals) != 0) throw_errno("F_ADD_SEALS");
  return fd;
}

std::size_t sealed_memfd_size(int fd, const char* what) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (static_cast<unsigned>(seals) & kRequiredSeals) != kRequiredSeals) {
    throw std::runtime_error(std::string(what) + " is not a sealed memfd");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("fstat");
  return static_cast<std::size_t>(st.st_size);
}

void check_sealed_memfd(int fd, std::size_t bytes, const char* what) {
  if (sealed_memfd_size(fd, what) != bytes) {
    throw std::runtime_error(std::string(what) + " has the wrong size");
  }
}

}  // namespace vdtu
