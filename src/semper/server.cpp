#include <cstring>

#include "vdtu/semper.hpp"

namespace vdtu::semper {

namespace {
constexpr std::uint8_t kServiceSlotOrder = 7;     // 128-byte slots hold a ServiceRequest
constexpr std::uint8_t kServiceBufferOrder = 12;  // 32 of them
}  // namespace

Server::Server(Syscalls& sys, std::string_view name, EpId ep, Selector gate_sel, Selector service_sel,
               Handlers handlers)
    : sys_(sys), ep_(ep), handlers_(std::move(handlers)) {
  error_ = sys.attach_rb(ep, kServiceBufferOrder, kServiceSlotOrder);
  if (error_ == Error::kNone) error_ = sys.create_gate(kif::kSelSelf, gate_sel, ep, /*label=*/ep, 32);
  if (error_ == Error::kNone) error_ = sys.create_srv(service_sel, gate_sel, name);
  if (error_ == Error::kNone && sys.dtu().wait_for_endpoint(ep, EndpointKind::kReceive) != Status::kOk) {
    error_ = Error::kEndpointFailed;
  }
}

Status Server::serve_one(std::chrono::nanoseconds timeout) {
  ReceivedMessage m;
  if (auto st = sys_.dtu().receive(ep_, m, timeout); st != Status::kOk) return st;
  kif::ServiceRequest r{};
  kif::ServiceReply answer{};
  if (m.payload.size() != sizeof(r)) {
    answer.error = Error::kMalformed;
  } else {
    std::memcpy(&r, m.payload.data(), sizeof(r));
    switch (r.op) {
      case kif::ServiceOp::kOpen:
        answer.error = handlers_.open ? handlers_.open(r.arg, answer.ident) : Error::kNotSupported;
        break;
      case kif::ServiceOp::kObtain:
        answer.count = r.count;
        answer.error =
            handlers_.obtain ? handlers_.obtain(r.ident, r.count, r.arg, answer.first) : Error::kNotSupported;
        break;
      case kif::ServiceOp::kDelegate:
        answer.count = r.count;
        answer.error = handlers_.delegate ? handlers_.delegate(r.ident, r.count, r.arg, answer.first)
                                          : Error::kNotSupported;
        break;
      case kif::ServiceOp::kClose:
        if (handlers_.close) handlers_.close(r.ident);
        break;
      case kif::ServiceOp::kShutdown:
        sys_.dtu().reply(m, std::as_bytes(std::span(&answer, 1)));
        return Status::kTerminated;
      default: answer.error = Error::kInvalidArgs; break;
    }
  }
  return sys_.dtu().reply(m, std::as_bytes(std::span(&answer, 1)));
}

MemGate::MemGate(Syscalls& sys, Selector cap, EpId ep) : sys_(sys), ep_(ep), error_(sys.activate(cap, ep)) {
  if (error_ == Error::kNone && sys.dtu().wait_for_endpoint(ep, EndpointKind::kMemory) != Status::kOk) {
    error_ = Error::kEndpointFailed;
  }
}

Status MemGate::read(std::uint64_t offset, std::span<std::byte> into) {
  return sys_.dtu().read(ep_, offset, into);
}
Status MemGate::write(std::uint64_t offset, std::span<const std::byte> from) {
  return sys_.dtu().write(ep_, offset, from);
}

}  // namespace vdtu::semper
