#pragma once
// The cryptography of secure sessions, all of it libsodium's: X25519 key
// exchange (crypto_kx) with ephemeral keys, HMAC-SHA-512-256 (crypto_auth)
// on handshake messages, BLAKE2b for deriving keys, ChaCha20-Poly1305 (IETF)
// for datagrams. Secrets live in Secret<N>, which wipes them when it goes.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "cluster_key.hpp"
#include "session_format.hpp"

namespace vdtu::bridge {

void ensure_sodium();
void wipe_secret(void* bytes, std::size_t size);

template <std::size_t N>
class Secret {
 public:
  Secret() = default;
  ~Secret() { wipe_secret(bytes_.data(), N); }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  // A move leaves no copy behind.
  Secret(Secret&& other) noexcept : bytes_(other.bytes_) { wipe_secret(other.bytes_.data(), N); }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      bytes_ = other.bytes_;
      wipe_secret(other.bytes_.data(), N);
    }
    return *this;
  }

  unsigned char* data() { return bytes_.data(); }
  [[nodiscard]] const unsigned char* data() const { return bytes_.data(); }
  static constexpr std::size_t size() { return N; }

 private:
  std::array<unsigned char, N> bytes_{};
};

using SymmetricKey = Secret<32>;

// One handshake's X25519 key pair.
struct EphemeralKeys {
  PublicKey public_key{};
  Secret<32> secret_key;

  static EphemeralKeys generate();
};

// One session's keys, one per direction.
struct SessionKeys {
  SymmetricKey receive;
  SymmetricKey send;
};

// What the cluster key is used for, each under its own derived key: the MAC
// of handshake messages, and a second ingredient of every session key (so a
// session stays secret to those without the cluster key even if X25519 were
// broken; forward secrecy comes from the ephemeral keys).
class ClusterSecrets {
 public:
  explicit ClusterSecrets(const ClusterKey& key);

  [[nodiscard]] Mac mac(std::span<const std::byte> message) const;
  [[nodiscard]] bool verify(std::span<const std::byte> message, const Mac& mac) const;

  // nullopt when the peer's public key is unusable (a low-order point).
  [[nodiscard]] std::optional<SessionKeys> initiator_keys(const EphemeralKeys& own,
                                                          const PublicKey& responder) const;
  [[nodiscard]] std::optional<SessionKeys> responder_keys(const EphemeralKeys& own,
                                                          const PublicKey& initiator) const;

 private:
  void mix_into(SessionKeys& keys) const;

  SymmetricKey mac_key_;
  SymmetricKey mix_key_;
};

// Both ends compute the same id from the two public keys of a handshake.
std::uint64_t session_id_of(const PublicKey& initiator, const PublicKey& responder);
std::uint64_t random_u64();

// ChaCha20-Poly1305 (IETF), nonce = counter. seal_aead writes
// plain.size() + kTagBytes bytes to `out`; open_aead writes
// sealed.size() - kTagBytes bytes and is false for anything not sealed
// with `key`, `counter` and `header`.
void seal_aead(const SymmetricKey& key, std::uint64_t counter, std::span<const std::byte> header,
               std::span<const std::byte> plain, std::byte* out);
bool open_aead(const SymmetricKey& key, std::uint64_t counter, std::span<const std::byte> header,
               std::span<const std::byte> sealed, std::byte* out);

}  // namespace vdtu::bridge
