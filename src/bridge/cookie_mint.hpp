#pragma once
// Cookies make a responder's X25519 work depend on a fresh exchange: an INIT
// is answered with a key only if it carries a cookie this responder handed
// out for that initiator and ephemeral key recently. A replayed old INIT
// carries none that still counts, so it costs a keyed hash, not a key
// exchange. The cookie secret is random and changes every `lifetime`; one of
// the previous secret still counts, so a cookie lives one to two lifetimes.
// No state per initiator.

#include <chrono>

#include "session_crypto.hpp"

namespace vdtu::bridge {

class CookieMint {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CookieMint(std::chrono::milliseconds lifetime);

  // Changes the secret when its lifetime is over (the first call starts it).
  void rotate(Clock::time_point now);
  [[nodiscard]] Cookie make(NodeId initiator, NodeId responder, const PublicKey& ephemeral) const;
  [[nodiscard]] bool valid(NodeId initiator, NodeId responder, const PublicKey& ephemeral,
                           const Cookie& cookie) const;

 private:
  static Cookie compute(const Secret<32>& secret, NodeId initiator, NodeId responder,
                        const PublicKey& ephemeral);

  std::chrono::milliseconds lifetime_;
  Secret<32> current_;
  Secret<32> previous_;
  Clock::time_point rotated_{};
  bool started_ = false;
};

}  // namespace vdtu::bridge
