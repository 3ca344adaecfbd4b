#include "datagram_seal.hpp"

#include <sodium.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace vdtu::bridge {
namespace {

static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == sizeof(ClusterKey));
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == DatagramSealer::kHeaderBytes);
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == DatagramSealer::kTagBytes);

void ensure_sodium() {
  if (::sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

const unsigned char* uchars(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* uchars(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

DatagramSealer::DatagramSealer(const ClusterKey& key, std::uint32_t self_node)
    : key_(key),
      self_(self_node),
      next_counter_(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::system_clock::now().time_since_epoch())
                                                   .count())) {
  ensure_sodium();
}

void DatagramSealer::seal(std::span<const std::byte> plain, std::vector<std::byte>& out) {
  out.resize(plain.size() + kOverhead);
  const std::uint64_t counter = next_counter_++;
  std::memcpy(out.data(), &self_, sizeof(self_));
  std::memcpy(out.data() + sizeof(self_), &counter, sizeof(counter));
  unsigned long long written = 0;
  ::crypto_aead_chacha20poly1305_ietf_encrypt(uchars(out.data() + kHeaderBytes), &written,
                                              uchars(plain.data()), plain.size(), nullptr, 0, nullptr,
                                              uchars(out.data()), uchars(key_.data()));
  out.resize(kHeaderBytes + written);
}

DatagramSealer::Opened DatagramSealer::open(std::span<const std::byte> sealed, std::vector<std::byte>& plain,
                                            std::uint32_t& sender) {
  if (sealed.size() < kOverhead) return Opened::kTruncated;
  std::uint64_t counter = 0;
  std::memcpy(&sender, sealed.data(), sizeof(sender));
  std::memcpy(&counter, sealed.data() + sizeof(sender), sizeof(counter));
  plain.resize(sealed.size() - kOverhead);
  unsigned long long length = 0;
  if (::crypto_aead_chacha20poly1305_ietf_decrypt(
          uchars(plain.data()), &length, nullptr, uchars(sealed.data() + kHeaderBytes),
          sealed.size() - kHeaderBytes, nullptr, 0, uchars(sealed.data()), uchars(key_.data())) != 0) {
    return Opened::kForged;
  }
  // Only an authentic datagram may move the window, or a forger could
  // push it ahead and make every real datagram look old.
  auto& window = windows_[sender];
  if (window.check(counter) != ReplayWindow<64>::Check::kNew) return Opened::kReplayed;
  window.accept(counter);
  plain.resize(length);
  return Opened::kOk;
}

}  // namespace vdtu::bridge
