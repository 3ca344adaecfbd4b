// A hostile client against the switch: the fuzzer's bytes are a script of
// writes into the client's two rings (control words, slot headers, frame
// bytes, at any offset), frames published through the ring as a client
// would, and forwarding rounds, with an honest port next to it. The switch
// must never touch memory outside the rings, never hand the honest port a
// frame outside [14, MTU + 18] bytes, and, once the hostile port is found
// broken, go on with the honest one. Any crash or sanitizer report is a
// finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "net/forwarding_engine.hpp"
#include "net/shm_port.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::net;

constexpr std::uint32_t kMtu = 256;  // small slots keep the script short
constexpr std::uint32_t kSlots = 8;

// Reads the script.
class Script {
 public:
  Script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool more() const { return at_ < size_; }
  template <class T>
  T next() {
    T value{};
    const auto n = std::min(sizeof(T), size_ - at_);
    std::memcpy(&value, data_ + at_, n);
    at_ += n;
    return value;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

struct Client {
  explicit Client(const ShmPort& port)
      : to(attach(port, 0)),
        from(attach(port, 2)),
        raw_to(to.memfd(), to.geometry().total_bytes()),
        raw_from(from.memfd(), from.geometry().total_bytes()),
        producer(to),
        consumer(from) {}
  static SharedChannel attach(const ShmPort& port, std::size_t first) {
    const auto fds = port.client_fds();
    return SharedChannel::attach(UniqueFd(::dup(fds[first])), UniqueFd(::dup(fds[first + 1])),
                                 port.geometry());
  }
  SharedChannel to;
  SharedChannel from;
  MappedRegion raw_to;  // the attacker's view of the same bytes
  MappedRegion raw_from;
  Producer producer;
  Consumer consumer;
};

PortId add(ForwardingEngine& engine, std::unique_ptr<Client>& client, const char* name) {
  const auto id = engine.reserve({name, kMtu, {}});
  auto port = std::make_unique<ShmPort>(kMtu, kSlots, UniqueFd{}, name);
  client = std::make_unique<Client>(*port);
  engine.attach(id, std::move(port));
  return id;
}

void check_delivered(Client& honest) {
  MessageView m;
  while (honest.consumer.try_fetch(m) == Status::kOk) {
    if (m.header.length < kEthernetHeaderBytes || m.header.length > max_frame_bytes(kMtu)) std::abort();
    honest.consumer.ack();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  EngineSettings settings;
  settings.table.capacity = 16;
  settings.table.seed = 1;
  settings.burst = 4;
  ForwardingEngine engine(settings);
  std::unique_ptr<Client> hostile;
  std::unique_ptr<Client> honest;
  const auto bad = add(engine, hostile, "hostile");
  add(engine, honest, "honest");
  bool bad_attached = true;

  Script script(data, size);
  std::uint32_t now = 1;
  while (script.more()) {
    switch (script.next<std::uint8_t>() % 5) {
      case 0: {  // a word anywhere in the to-switch ring
        const auto offset = script.next<std::uint16_t>() % (hostile->raw_to.size() - 7);
        const auto value = script.next<std::uint64_t>();
        std::memcpy(hostile->raw_to.data() + offset, &value, sizeof(value));
        break;
      }
      case 1: {  // a word anywhere in the from-switch ring
        const auto offset = script.next<std::uint16_t>() % (hostile->raw_from.size() - 7);
        const auto value = script.next<std::uint64_t>();
        std::memcpy(hostile->raw_from.data() + offset, &value, sizeof(value));
        break;
      }
      case 2: {  // a frame of any length (up to the slot) and contents
        std::array<std::byte, 512> frame{};
        const auto length = script.next<std::uint16_t>() % (hostile->producer.max_payload() + 1);
        for (std::size_t i = 0; i < length && i < 32; ++i)
          frame[i] = static_cast<std::byte>(script.next<std::uint8_t>());
        MessageHeader header{};
        hostile->producer.try_send(header, std::span(frame).first(length));
        break;
      }
      case 3: {  // the honest client sends a frame to someone
        std::array<std::byte, 64> frame{};
        frame[0] = static_cast<std::byte>(script.next<std::uint8_t>() & 0x03U);  // unicast or group
        frame[5] = static_cast<std::byte>(script.next<std::uint8_t>());
        frame[6] = std::byte{0x02};
        frame[11] = std::byte{0x77};
        MessageHeader header{};
        honest->producer.try_send(header, frame);
        break;
      }
      default: {
        now += script.next<std::uint8_t>() % 4;
        engine.poll(ForwardingEngine::Clock::time_point(std::chrono::seconds(now)));
        // The hostile client's own receive side: whatever the switch wrote.
        MessageView m;
        while (hostile->consumer.try_fetch(m) == Status::kOk) hostile->consumer.ack();
        check_delivered(*honest);
        if (bad_attached && engine.port(bad)->failure()) {
          engine.detach(bad);
          bad_attached = false;
        }
        break;
      }
    }
  }
  engine.poll(ForwardingEngine::Clock::time_point(std::chrono::seconds(now)));
  check_delivered(*honest);
  return 0;
}
