#pragma once

#include <cstdint>
#include <string_view>

namespace vdtu {

// Outcome of a data-path operation. Data paths never throw: a hostile peer must
// not be able to turn its misbehaviour into an exception storm in the victim.
enum class Status : std::uint8_t {
  kOk,
  kEmpty,       // nothing to fetch (yet)
  kFull,        // no free slot (yet)
  kNotActive,   // channel configured but not yet activated
  kTerminated,  // channel terminated; queued messages may still be drained
  kTooLarge,    // payload does not fit into a slot
  kBroken,      // the peer violated the protocol; the channel is unusable
  kTimeout,     // a wait ran out
  kNoCredits,   // a send endpoint has no credits left
  kInvalidArgument,
  kPermissionDenied,
  kReplyFailed,    // reply to a message that is not reply-enabled (or replied already)
  kNoResources,    // no free endpoint, channel or memory
  kPeerGone,       // the other side exited or was killed
  kNotConfigured,  // endpoint not configured for this operation
  kOutOfBounds,    // memory access outside the endpoint's region
};

constexpr std::string_view to_string(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kEmpty: return "empty";
    case Status::kFull: return "full";
    case Status::kNotActive: return "channel not active";
    case Status::kTerminated: return "terminated";
    case Status::kTooLarge: return "message too large";
    case Status::kBroken: return "peer violated the channel protocol";
    case Status::kTimeout: return "timeout";
    case Status::kNoCredits: return "no credits";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kPermissionDenied: return "permission denied";
    case Status::kReplyFailed: return "reply failed";
    case Status::kNoResources: return "no resources";
    case Status::kPeerGone: return "peer gone";
    case Status::kNotConfigured: return "endpoint not configured";
    case Status::kOutOfBounds: return "out of bounds";
  }
  return "unknown status";
}

}  // namespace vdtu
