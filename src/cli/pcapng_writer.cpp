#include "pcapng_writer.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace vdtu::cli {
namespace {

constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint32_t kInterfaceDescription = 1;
constexpr std::uint32_t kEnhancedPacket = 6;
constexpr std::uint16_t kOptEnd = 0;
constexpr std::uint16_t kOptIfName = 2;
constexpr std::uint16_t kOptIfTsResol = 9;
constexpr std::uint8_t kNanoseconds = 9;

std::size_t padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

class Block {
 public:
  explicit Block(std::uint32_t type) { u32(type).u32(0); }
  Block& u16(std::uint16_t v) { return raw(&v, sizeof(v)); }
  Block& u32(std::uint32_t v) { return raw(&v, sizeof(v)); }
  Block& u64(std::uint64_t v) { return raw(&v, sizeof(v)); }
  Block& raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  Block& pad() {
    bytes_.resize(padded(bytes_.size()));
    return *this;
  }
  Block& option(std::uint16_t code, const void* p, std::size_t n) {
    u16(code).u16(static_cast<std::uint16_t>(n)).raw(p, n);
    return pad();
  }
  // Total length at both ends, as pcapng wants.
  std::span<const std::byte> finish() {
    const auto total = static_cast<std::uint32_t>(bytes_.size() + 4);
    u32(total);
    std::memcpy(bytes_.data() + 4, &total, sizeof(total));
    return bytes_;
  }

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace

PcapngWriter::PcapngWriter(const std::string& path, std::uint32_t link_type, std::uint32_t snaplen,
                           const std::string& interface_name)
    : path_(path), file_(std::fopen(path.c_str(), "wb")) {
  if (!file_)
    throw std::runtime_error("cannot create " + path + ": " + std::generic_category().message(errno));
  Block shb(kSectionHeader);
  shb.u32(kByteOrderMagic).u16(1).u16(0).u64(~std::uint64_t{0});  // version 1.0, section length unknown
  put(shb.finish());
  Block idb(kInterfaceDescription);
  idb.u16(static_cast<std::uint16_t>(link_type)).u16(0).u32(snaplen);
  idb.option(kOptIfName, interface_name.data(), interface_name.size());
  idb.option(kOptIfTsResol, &kNanoseconds, 1);
  idb.u16(kOptEnd).u16(0);
  put(idb.finish());
}

void PcapngWriter::write(std::uint64_t time_ns, std::span<const std::byte> packet,
                         std::uint32_t original_length) {
  Block epb(kEnhancedPacket);
  epb.u32(0)
      .u32(static_cast<std::uint32_t>(time_ns >> 32U))
      .u32(static_cast<std::uint32_t>(time_ns))
      .u32(static_cast<std::uint32_t>(packet.size()))
      .u32(original_length)
      .raw(packet.data(), packet.size())
      .pad();
  put(epb.finish());
  ++packets_;
}

void PcapngWriter::put(std::span<const std::byte> bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) != bytes.size())
    throw std::runtime_error("cannot write " + path_ + ": " + std::generic_category().message(errno));
}

void PcapngWriter::close() {
  if (!file_) return;
  const bool ok = std::fflush(file_.get()) == 0;
  const int e = errno;
  file_.reset();
  if (!ok) throw std::runtime_error("cannot write " + path_ + ": " + std::generic_category().message(e));
}

}  // namespace vdtu::cli
