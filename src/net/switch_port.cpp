// The client side of a shared-memory port (what `vdtu::net` users link).
#include <cstring>
#include <stdexcept>

#include "port_protocol.hpp"
#include "unix_message.hpp"
#include "vdtu/net.hpp"

namespace vdtu::net {

// Channels first: the producer and consumer keep pointers to them.
struct SwitchPort::Rings {
  Rings(SharedChannel to, SharedChannel from)
      : to_switch(std::move(to)), from_switch(std::move(from)), producer(to_switch), consumer(from_switch) {}
  SharedChannel to_switch;
  SharedChannel from_switch;
  Producer producer;
  Consumer consumer;
};

namespace {

constexpr auto kReplyTimeout = std::chrono::seconds(10);

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
  throw std::runtime_error("switch at " + path + ": " + why);
}

wire::ConnectReply receive_reply(int socket, const std::string& path, std::vector<UniqueFd>& fds) {
  wire::ConnectReply reply;
  std::size_t size = 0;
  const auto got = receive_message(socket, std::as_writable_bytes(std::span(&reply, 1)), size, fds,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(kReplyTimeout));
  if (got == Received::kWouldBlock) refuse(path, "no answer within 10 s");
  if (got != Received::kMessage || size != sizeof(reply))
    refuse(path, "closed the connection or answered garbage");
  if (reply.magic != wire::kMagic || reply.version != wire::kVersion) refuse(path, "speaks another protocol");
  if (reply.accepted == 0) refuse(path, wire::get_text(reply.error).value_or("refused"));
  if (fds.size() != wire::kPortFds) refuse(path, "sent a port without its rings");
  return reply;
}

}  // namespace

SwitchPort SwitchPort::connect(const std::string& socket_path, const PortRequest& request) {
  if (!request.name.empty() && !wire::valid_port_name(request.name)) {
    throw std::invalid_argument("port name must be 1-31 characters of [A-Za-z0-9._-]: '" + request.name +
                                "'");
  }
  auto control = connect_unix(socket_path);
  wire::Request hello;
  hello.kind = wire::RequestKind::kConnectPort;
  wire::put_text(hello.name, request.name);
  if (!send_message(control.get(), std::as_bytes(std::span(&hello, 1)))) refuse(socket_path, "hung up");

  std::vector<UniqueFd> fds;
  const auto reply = receive_reply(control.get(), socket_path, fds);
  PortInfo info;
  info.id = reply.port_id;
  info.name = wire::get_text(reply.name).value_or("");
  info.mtu = reply.mtu;
  if (info.mtu < kMinMtu || info.mtu > kMaxMtu) refuse(socket_path, "gave an MTU out of range");
  if (reply.has_mac != 0) info.mac = MacAddress{reply.mac};

  const ChannelGeometry to{reply.to_switch_slots, reply.to_switch_slot_size};
  const ChannelGeometry from{reply.from_switch_slots, reply.from_switch_slot_size};
  if (to.problem() || from.problem() || to.max_payload() < net::max_frame_bytes(info.mtu) ||
      from.max_payload() < net::max_frame_bytes(info.mtu)) {
    refuse(socket_path, "gave rings that do not fit its MTU");
  }
  auto rings = std::make_unique<Rings>(SharedChannel::attach(std::move(fds[0]), std::move(fds[1]), to),
                                       SharedChannel::attach(std::move(fds[2]), std::move(fds[3]), from));
  return {std::move(control), std::move(info), std::move(rings)};
}

SwitchPort::SwitchPort(UniqueFd control, PortInfo info, std::unique_ptr<Rings> rings)
    : control_(std::move(control)), info_(std::move(info)), rings_(std::move(rings)) {}

SwitchPort::SwitchPort(SwitchPort&&) noexcept = default;
SwitchPort& SwitchPort::operator=(SwitchPort&&) noexcept = default;

// Ending our ring tells the switch no more frames come; it forwards what is
// queued and drops the port when the connection closes right after.
SwitchPort::~SwitchPort() {
  if (rings_) rings_->to_switch.terminate();
}

const PortInfo& SwitchPort::info() const { return info_; }

Status SwitchPort::try_send(std::span<const std::byte> frame) {
  const std::span<const std::byte> one[] = {frame};
  std::uint32_t sent = 0;
  return try_send_burst(one, sent);
}

Status SwitchPort::try_send_burst(std::span<const std::span<const std::byte>> frames, std::uint32_t& sent) {
  sent = 0;
  if (frames.empty()) return Status::kInvalidArgument;
  for (const auto& f : frames) {
    if (f.size() > max_frame_bytes()) return Status::kTooLarge;
    if (f.size() < kEthernetHeaderBytes) return Status::kInvalidArgument;
  }
  auto& producer = rings_->producer;
  std::uint32_t granted = 0;
  const auto wanted = static_cast<std::uint32_t>(std::min<std::size_t>(frames.size(), UINT32_MAX));
  if (const auto st = producer.try_reserve(wanted, granted); st != Status::kOk) return st;
  for (std::uint32_t i = 0; i < granted; ++i) {
    std::memcpy(producer.payload_area(i).data(), frames[i].data(), frames[i].size());
    MessageHeader header{};
    header.length = static_cast<std::uint16_t>(frames[i].size());
    producer.finish(i, header);
  }
  const auto st = producer.publish(granted);
  if (st == Status::kOk) sent = granted;
  return st;
}

Status SwitchPort::wait_writable(std::chrono::nanoseconds timeout, WaitPolicy policy) {
  return rings_->producer.wait_writable(policy, timeout);
}

Status SwitchPort::try_receive_burst(std::span<std::span<const std::byte>> out, std::uint32_t& got) {
  got = 0;
  if (out.empty()) return Status::kInvalidArgument;
  Status st = Status::kOk;
  while (got < out.size()) {
    MessageView m;
    st = rings_->consumer.try_fetch(m);
    if (st != Status::kOk) break;
    out[got++] = m.payload;
  }
  return got > 0 ? Status::kOk : st;
}

Status SwitchPort::release(std::uint32_t count) { return rings_->consumer.ack(count); }

Status SwitchPort::wait_readable(std::chrono::nanoseconds timeout, WaitPolicy policy) {
  return rings_->consumer.wait_readable(policy, timeout);
}

std::string read_switch_report(const std::string& socket_path, bool json) {
  auto connection = connect_unix(socket_path);
  wire::Request request;
  request.kind = wire::RequestKind::kStatistics;
  request.format = json ? wire::ReportFormat::kJson : wire::ReportFormat::kText;
  if (!send_message(connection.get(), std::as_bytes(std::span(&request, 1)))) refuse(socket_path, "hung up");
  std::string report;
  std::vector<std::byte> chunk(wire::kChunkBytes);
  for (;;) {
    std::size_t size = 0;
    std::vector<UniqueFd> fds;
    const auto got = receive_message(connection.get(), chunk, size, fds,
                                     std::chrono::duration_cast<std::chrono::milliseconds>(kReplyTimeout));
    if (got == Received::kClosed) break;
    if (got != Received::kMessage) refuse(socket_path, "sent no complete report");
    report.append(reinterpret_cast<const char*>(chunk.data()), size);
  }
  if (report.empty()) refuse(socket_path, "sent an empty report");
  return report;
}

int SwitchPort::receive_event_fd() const { return rings_->from_switch.eventfd(); }
bool SwitchPort::arm_receive_event() { return rings_->consumer.arm_event(); }
void SwitchPort::disarm_receive_event() { rings_->consumer.disarm_event(); }

}  // namespace vdtu::net
