#pragma once
// Shared memory that no peer can resize: a memfd sealed against shrinking and
// growing (and against removing those seals), so a peer cannot truncate it and
// make the other side fault on a mapped page.

#include <cstddef>

#include "vdtu/unique_fd.hpp"

namespace vdtu {

// Creator: a fresh sealed memfd of `bytes` (zero-filled). Throws std::system_error.
UniqueFd make_sealed_memfd(const char* name, std::size_t bytes);
// Receiver of an fd: throws std::runtime_error (naming `what`) unless `fd` is a
// memfd with those seals and exactly `bytes` long.
void check_sealed_memfd(int fd, std::size_t bytes, const char* what);
// Receiver of an fd whose size it learns from the fd: its size, or throws
// std::runtime_error unless `fd` is a memfd with those seals (then the size
// cannot change any more).
std::size_t sealed_memfd_size(int fd, const char* what);

}  // namespace vdtu
