// A VPE program: asks the SemperOS kernel for a memory capability, writes
// and reads it through the node, derives a read-only capability and revokes
// the parent, which takes the derived one (and its endpoint) along. Exit
// code 0 when the kernel and the node did all of that.
#include <array>
#include <cstdio>
#include <cstring>
#include <span>
#include <string_view>

#include "vdtu/semper.hpp"

namespace {

using vdtu::Status;
using vdtu::kif::Error;

constexpr vdtu::kif::Selector kMemory = 20;
constexpr vdtu::kif::Selector kReadOnly = 21;
constexpr vdtu::EpId kMemoryEp = 3;
constexpr vdtu::EpId kReadOnlyEp = 4;
constexpr std::string_view kGreeting = "hello from a VPE";

int fail(const char* what) {
  std::fprintf(stderr, "hello_vpe: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  auto dtu = vdtu::Dtu::from_environment();  // the node passed the endpoints' fds
  if (!dtu) return fail("not started by a vdtu node");
  vdtu::semper::Syscalls sys(*dtu);  // waits until the kernel has set up our endpoints
  if (sys.noop() != Error::kNone) return fail("NOOP failed");
  if (sys.req_mem(kMemory, 4096, vdtu::kif::kPermRW) != Error::kNone) return fail("REQMEM failed");
  if (sys.derive_mem(kMemory, kReadOnly, 0, 64, vdtu::kif::kPermR) != Error::kNone)
    return fail("DERIVEMEM failed");

  vdtu::semper::MemGate memory(sys, kMemory, kMemoryEp);
  vdtu::semper::MemGate read_only(sys, kReadOnly, kReadOnlyEp);
  if (memory.error() != Error::kNone || read_only.error() != Error::kNone) return fail("ACTIVATE failed");
  if (memory.write(0, std::as_bytes(std::span(kGreeting))) != Status::kOk) return fail("write failed");
  std::array<char, kGreeting.size()> back{};
  if (read_only.read(0, std::as_writable_bytes(std::span(back))) != Status::kOk) return fail("read failed");
  if (std::string_view(back.data(), back.size()) != kGreeting) return fail("read back something else");
  if (read_only.write(0, std::as_bytes(std::span(kGreeting))) != Status::kPermissionDenied)
    return fail("wrote through a read-only capability");

  if (sys.revoke(kMemory) != Error::kNone) return fail("REVOKE failed");
  if (read_only.read(0, std::as_writable_bytes(std::span(back))) != Status::kNotConfigured)
    return fail("the derived capability outlived its revoked parent");
  std::printf("hello_vpe: wrote \"%.*s\", read it back read-only, revoked both\n",
              static_cast<int>(kGreeting.size()), kGreeting.data());
  return 0;
}
