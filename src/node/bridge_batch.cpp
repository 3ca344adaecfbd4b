#include "bridge_batch.hpp"

#include <cstdint>
#include <cstring>

#include "bridge_messages.hpp"

namespace vdtu::dtu {
namespace {

using Length = std::uint16_t;
static_assert(kBatchBytes <= 0xffff, "a message's length in a batch is 16 bits");

// Walks the entries of a batch body; false at the first malformed one.
template <class Visit>
bool walk(std::span<const std::byte> body, Visit visit) {
  while (!body.empty()) {
    Length length = 0;
    if (body.size() < sizeof(length)) return false;
    std::memcpy(&length, body.data(), sizeof(length));
    body = body.subspan(sizeof(length));
    if (length < sizeof(BridgeHeader) || length > body.size()) return false;
    const auto message = body.first(length);
    if (static_cast<BridgeOp>(message[0]) == BridgeOp::kBatch) return false;
    visit(message);
    body = body.subspan(length);
  }
  return true;
}

}  // namespace

std::size_t batchable(const std::deque<std::vector<std::byte>>& queue) {
  std::size_t count = 0;
  std::size_t bytes = sizeof(BridgeHeader);
  for (const auto& message : queue) {
    bytes += sizeof(Length) + message.size();
    if (bytes > kBatchBytes) break;
    ++count;
  }
  return std::max<std::size_t>(count, 1);
}

std::vector<std::byte> make_batch(const std::deque<std::vector<std::byte>>& queue, std::size_t count) {
  std::size_t bytes = sizeof(BridgeHeader);
  for (std::size_t i = 0; i < count; ++i) bytes += sizeof(Length) + queue[i].size();
  std::vector<std::byte> batch(bytes);
  const BridgeHeader header{BridgeOp::kBatch, 0};
  std::memcpy(batch.data(), &header, sizeof(header));
  auto* at = batch.data() + sizeof(header);
  for (std::size_t i = 0; i < count; ++i) {
    const auto length = static_cast<Length>(queue[i].size());
    std::memcpy(at, &length, sizeof(length));
    at += sizeof(length);
    std::memcpy(at, queue[i].data(), queue[i].size());
    at += queue[i].size();
  }
  return batch;
}

bool for_each_in_batch(std::span<const std::byte> body,
                       const std::function<void(std::span<const std::byte>)>& each) {
  if (sizeof(BridgeHeader) + body.size() > kBatchBytes) return false;
  if (!walk(body, [](std::span<const std::byte>) {})) return false;
  walk(body, each);
  return true;
}

}  // namespace vdtu::dtu
