#include "cookie_mint.hpp"

#include <sodium.h>

#include <cstring>

namespace vdtu::bridge {
namespace {

void randomize(Secret<32>& secret) { ::randombytes_buf(secret.data(), secret.size()); }

}  // namespace

CookieMint::CookieMint(std::chrono::milliseconds lifetime) : lifetime_(lifetime) {
  ensure_sodium();
  randomize(current_);
  randomize(previous_);
}

void CookieMint::rotate(Clock::time_point now) {
  if (!started_) {
    started_ = true;
    rotated_ = now;
    return;
  }
  if (now - rotated_ < lifetime_) return;
  // Long silence: both secrets are too old to keep.
  if (now - rotated_ >= 2 * lifetime_) randomize(current_);
  previous_ = std::move(current_);
  randomize(current_);
  rotated_ = now;
}

Cookie CookieMint::compute(const Secret<32>& secret, NodeId initiator, NodeId responder,
                           const PublicKey& ephemeral) {
  std::array<unsigned char, 2 * sizeof(NodeId) + kPublicKeyBytes> input{};
  std::memcpy(input.data(), &initiator, sizeof(initiator));
  std::memcpy(input.data() + sizeof(initiator), &responder, sizeof(responder));
  std::memcpy(input.data() + 2 * sizeof(NodeId), ephemeral.data(), ephemeral.size());
  Cookie cookie{};
  ::crypto_generichash(cookie.data(), cookie.size(), input.data(), input.size(), secret.data(),
                       secret.size());
  return cookie;
}

Cookie CookieMint::make(NodeId initiator, NodeId responder, const PublicKey& ephemeral) const {
  return compute(current_, initiator, responder, ephemeral);
}

bool CookieMint::valid(NodeId initiator, NodeId responder, const PublicKey& ephemeral,
                       const Cookie& cookie) const {
  for (const Secret<32>* secret : {&current_, &previous_}) {
    const auto expected = compute(*secret, initiator, responder, ephemeral);
    if (::sodium_memcmp(expected.data(), cookie.data(), cookie.size()) == 0) return true;
  }
  return false;
}

}  // namespace vdtu::bridge
