#pragma once
// Several bridge messages in one link message (BridgeOp::kBatch), so that
// what a node has for a peer at the end of a step (a kernel's message and the
// credit for the one before it, say) leaves in one datagram instead of one
// each. After the batch's own header (binding 0), each message follows as a
// 16-bit little-endian length and its bytes (header and body). A batch
// never holds another batch.

#include <cstddef>
#include <deque>
#include <functional>
#include <span>
#include <vector>

namespace vdtu::dtu {

// The largest batch, its header included: with the 40-byte frame header and
// a seal's 34 bytes it still fits one Ethernet frame's UDP payload (1472
// bytes), so batching never makes a datagram that IP must fragment. A larger
// message travels alone, as before. A larger batch is malformed: it would let
// a peer put far more requests into one link message than the receiver's
// per-message bounds expect.
inline constexpr std::size_t kBatchBytes = 1392;

// How many messages from the front of `queue` go into the next link message:
// at least one (alone when it is larger than a batch can hold).
[[nodiscard]] std::size_t batchable(const std::deque<std::vector<std::byte>>& queue);

// The batch holding the first `count` messages of `queue` (count >= 2, as
// batchable() counted them).
[[nodiscard]] std::vector<std::byte> make_batch(const std::deque<std::vector<std::byte>>& queue,
                                                std::size_t count);

// Calls `each` for every message of a batch's body (what follows its
// header), in order, if the whole body is well formed: the batch within
// kBatchBytes, every length within the body and at least a bridge header, no
// batch inside, nothing left over.
// A malformed body calls nothing and returns false.
bool for_each_in_batch(std::span<const std::byte> body,
                       const std::function<void(std::span<const std::byte>)>& each);

}  // namespace vdtu::dtu
