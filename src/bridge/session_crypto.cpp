#include "session_crypto.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace vdtu::bridge {
namespace {

static_assert(crypto_kx_PUBLICKEYBYTES == kPublicKeyBytes);
static_assert(crypto_kx_SECRETKEYBYTES == 32);
static_assert(crypto_kx_SESSIONKEYBYTES == SymmetricKey::size());
static_assert(crypto_auth_BYTES == kMacBytes);
static_assert(crypto_auth_KEYBYTES == SymmetricKey::size());
static_assert(crypto_kdf_KEYBYTES == sizeof(ClusterKey));
static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == SymmetricKey::size());
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kTagBytes);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);

constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES] = {'v', 'd', 't', 'u', 's', 'e', 's', 's'};
constexpr std::uint64_t kMacSubkey = 1;
constexpr std::uint64_t kMixSubkey = 2;

const unsigned char* uchars(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* uchars(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

SymmetricKey derive(const ClusterKey& key, std::uint64_t subkey) {
  SymmetricKey out;
  ::crypto_kdf_derive_from_key(out.data(), out.size(), subkey, kKdfContext, uchars(key.data()));
  return out;
}

std::array<unsigned char, 12> nonce_of(std::uint64_t counter) {
  std::array<unsigned char, 12> nonce{};
  std::memcpy(nonce.data(), &counter, sizeof(counter));
  return nonce;
}

}  // namespace

void ensure_sodium() {
  if (::sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

void wipe_secret(void* bytes, std::size_t size) { ::sodium_memzero(bytes, size); }

EphemeralKeys EphemeralKeys::generate() {
  EphemeralKeys keys;
  ::crypto_kx_keypair(keys.public_key.data(), keys.secret_key.data());
  return keys;
}

ClusterSecrets::ClusterSecrets(const ClusterKey& key)
    : mac_key_((ensure_sodium(), derive(key, kMacSubkey))), mix_key_(derive(key, kMixSubkey)) {}

Mac ClusterSecrets::mac(std::span<const std::byte> message) const {
  Mac out{};
  ::crypto_auth(out.data(), uchars(message.data()), message.size(), mac_key_.data());
  return out;
}

bool ClusterSecrets::verify(std::span<const std::byte> message, const Mac& mac) const {
  return ::crypto_auth_verify(mac.data(), uchars(message.data()), message.size(), mac_key_.data()) == 0;
}

std::optional<SessionKeys> ClusterSecrets::initiator_keys(const EphemeralKeys& own,
                                                          const PublicKey& responder) const {
  SessionKeys keys;
  if (::crypto_kx_client_session_keys(keys.receive.data(), keys.send.data(), own.public_key.data(),
                                      own.secret_key.data(), responder.data()) != 0) {
    return std::nullopt;
  }
  mix_into(keys);
  return keys;
}

std::optional<SessionKeys> ClusterSecrets::responder_keys(const EphemeralKeys& own,
                                                          const PublicKey& initiator) const {
  SessionKeys keys;
  if (::crypto_kx_server_session_keys(keys.receive.data(), keys.send.data(), own.public_key.data(),
                                      own.secret_key.data(), initiator.data()) != 0) {
    return std::nullopt;
  }
  mix_into(keys);
  return keys;
}

// key = BLAKE2b-256(key: the mixing key, message: the key from X25519)
void ClusterSecrets::mix_into(SessionKeys& keys) const {
  for (SymmetricKey* k : {&keys.receive, &keys.send}) {
    SymmetricKey mixed;
    ::crypto_generichash(mixed.data(), mixed.size(), k->data(), k->size(), mix_key_.data(), mix_key_.size());
    *k = std::move(mixed);
  }
}

std::uint64_t session_id_of(const PublicKey& initiator, const PublicKey& responder) {
  std::array<unsigned char, 2 * kPublicKeyBytes> both{};
  std::memcpy(both.data(), initiator.data(), initiator.size());
  std::memcpy(both.data() + initiator.size(), responder.data(), responder.size());
  std::uint64_t id = 0;
  ::crypto_generichash(reinterpret_cast<unsigned char*>(&id), sizeof(id), both.data(), both.size(), nullptr,
                       0);
  return id;
}

std::uint64_t random_u64() {
  ensure_sodium();
  std::uint64_t value = 0;
  ::randombytes_buf(&value, sizeof(value));
  return value;
}

void seal_aead(const SymmetricKey& key, std::uint64_t counter, std::span<const std::byte> header,
               std::span<const std::byte> plain, std::byte* out) {
  const auto nonce = nonce_of(counter);
  unsigned long long tag_length = 0;
  ::crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      uchars(out), uchars(out + plain.size()), &tag_length, uchars(plain.data()), plain.size(),
      uchars(header.data()), header.size(), nullptr, nonce.data(), key.data());
}

bool open_aead(const SymmetricKey& key, std::uint64_t counter, std::span<const std::byte> header,
               std::span<const std::byte> sealed, std::byte* out) {
  if (sealed.size() < kTagBytes) return false;
  const auto nonce = nonce_of(counter);
  const std::size_t length = sealed.size() - kTagBytes;
  return ::crypto_aead_chacha20poly1305_ietf_decrypt_detached(
             uchars(out), nullptr, uchars(sealed.data()), length, uchars(sealed.data() + length),
             uchars(header.data()), header.size(), nonce.data(), key.data()) == 0;
}

}  // namespace vdtu::bridge
