#pragma once
// A pcapng file with one interface (`vdtu trace`): section header,
// interface description, then one enhanced packet block per record.
// Little-endian, as the host; readers handle either order.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

namespace vdtu::cli {

class PcapngWriter {
 public:
  // Creates (truncates) `path`; throws std::runtime_error naming it.
  PcapngWriter(const std::string& path, std::uint32_t link_type, std::uint32_t snaplen,
               const std::string& interface_name);
  // Throws std::runtime_error when the file cannot take it.
  void write(std::uint64_t time_ns, std::span<const std::byte> packet, std::uint32_t original_length);
  // Flushes and closes; throws if that fails.
  void close();
  [[nodiscard]] std::uint64_t packets() const { return packets_; }

 private:
  void put(std::span<const std::byte> bytes);
  struct FileCloser {
    void operator()(std::FILE* f) const { (void)std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::uint64_t packets_ = 0;
};

}  // namespace vdtu::cli
