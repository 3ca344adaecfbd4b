#pragma once
// The datagrams of secure sessions between nodes (docs/PROTOCOL.md, "Sealed
// datagrams"): three handshake messages authenticated with the cluster key,
// and sealed datagrams (DATA carrying one reliable-link frame, CONFIRM
// carrying nothing) under per-session keys. Packed, little-endian.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "frame.hpp"

namespace vdtu::bridge {

using NodeId = std::uint16_t;

inline constexpr std::uint8_t kSessionVersion = 1;

enum class SessionKind : std::uint8_t {
  kData = 1,      // sealed: one frame
  kConfirm = 2,   // sealed, empty: proves the sender holds the session's keys
  kInit = 3,      // initiator -> responder: an ephemeral public key (and a cookie)
  kCookie = 4,    // responder -> initiator: come back with this cookie
  kResponse = 5,  // responder -> initiator: the responder's ephemeral public key
};

inline constexpr std::size_t kPublicKeyBytes = 32;
inline constexpr std::size_t kCookieBytes = 16;
inline constexpr std::size_t kMacBytes = 32;  // HMAC-SHA-512-256
inline constexpr std::size_t kTagBytes = 16;  // Poly1305

using PublicKey = std::array<std::uint8_t, kPublicKeyBytes>;
using Cookie = std::array<std::uint8_t, kCookieBytes>;
using Mac = std::array<std::uint8_t, kMacBytes>;

#pragma pack(push, 1)
// DATA and CONFIRM: this header (the AEAD's associated data), the ciphertext,
// the tag. The nonce is the counter (8 bytes, then 4 zero bytes).
struct SealedHeader {
  SessionKind kind;
  std::uint8_t version;
  std::uint64_t session;  // which session of the pair: both ends derive it from the handshake
  std::uint64_t counter;  // per session and direction, from 0
};

struct HandshakeHeader {
  SessionKind kind;
  std::uint8_t version;
  NodeId src;
  NodeId dst;
};

struct InitMessage {
  HandshakeHeader header;
  std::uint64_t incarnation;  // the initiator's, towards this responder
  PublicKey ephemeral;
  Cookie cookie;  // all zero until the responder handed one out
  Mac mac;        // over every byte before it
};

struct CookieMessage {
  HandshakeHeader header;
  PublicKey initiator_ephemeral;  // which INIT this answers
  Cookie cookie;
  Mac mac;
};

struct ResponseMessage {
  HandshakeHeader header;
  std::uint64_t incarnation;  // the responder's, towards this initiator
  PublicKey ephemeral;
  PublicKey initiator_ephemeral;  // which INIT this answers
  Mac mac;
};
#pragma pack(pop)

static_assert(sizeof(SealedHeader) == 18);
static_assert(offsetof(SealedHeader, session) == 2);
static_assert(offsetof(SealedHeader, counter) == 10);
static_assert(sizeof(HandshakeHeader) == 6);
static_assert(sizeof(InitMessage) == 94);
static_assert(offsetof(InitMessage, incarnation) == 6);
static_assert(offsetof(InitMessage, ephemeral) == 14);
static_assert(offsetof(InitMessage, cookie) == 46);
static_assert(offsetof(InitMessage, mac) == 62);
static_assert(sizeof(CookieMessage) == 86);
static_assert(offsetof(CookieMessage, cookie) == 38);
static_assert(offsetof(CookieMessage, mac) == 54);
static_assert(sizeof(ResponseMessage) == 110);
static_assert(offsetof(ResponseMessage, ephemeral) == 14);
static_assert(offsetof(ResponseMessage, initiator_ephemeral) == 46);
static_assert(offsetof(ResponseMessage, mac) == 78);

// The bytes a handshake message's MAC covers: all before it.
template <class Message>
std::span<const std::byte> authenticated_part(const Message& message) {
  return std::as_bytes(std::span(&message, 1)).first(offsetof(Message, mac));
}

inline constexpr std::size_t kSealOverhead = sizeof(SealedHeader) + kTagBytes;  // 34 bytes
inline constexpr std::size_t kMaxUdpPayload = 65507;                            // IPv4
inline constexpr std::size_t kMaxSealedPlaintext = kMaxUdpPayload - kSealOverhead;
static_assert(sizeof(FrameHeader) + kMaxFramePayload <= kMaxSealedPlaintext,
              "a DATA datagram with the largest frame fits one UDP datagram");

}  // namespace vdtu::bridge
