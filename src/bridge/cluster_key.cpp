#include "cluster_key.hpp"

#include <sodium.h>

#include <stdexcept>

namespace vdtu::bridge {
namespace {

unsigned char* uchars(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

ClusterKey parse_cluster_key(std::string_view hex) {
  ClusterKey key{};
  std::size_t length = 0;
  if (hex.size() != 2 * key.size() ||
      ::sodium_hex2bin(uchars(key.data()), key.size(), hex.data(), hex.size(), nullptr, &length, nullptr) !=
          0 ||
      length != key.size()) {
    throw std::invalid_argument("a cluster key is 64 hex digits (32 bytes)");
  }
  return key;
}

std::string random_cluster_key_hex() {
  if (::sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
  ClusterKey key{};
  ::randombytes_buf(key.data(), key.size());
  std::string hex(2 * key.size() + 1, '\0');
  ::sodium_bin2hex(hex.data(), hex.size(), uchars(key.data()), key.size());
  hex.pop_back();
  ::sodium_memzero(key.data(), key.size());
  return hex;
}

}  // namespace vdtu::bridge
