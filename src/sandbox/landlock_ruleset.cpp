#include "sandbox/landlock_ruleset.hpp"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace vdtu::sandbox {
namespace {

// Debian 12's kernel headers stop at ABI 2; these later values are fixed by
// the kernel's ABI (TRUNCATE in ABI 3, scoping in ABI 6).
constexpr std::uint64_t kAccessTruncate = 1ULL << 14U;
constexpr std::uint64_t kScopeAbstractUnixSocket = 1ULL << 0U;
constexpr std::uint64_t kScopeSignal = 1ULL << 1U;

// The ruleset attribute as of ABI 6; older kernels accept it as long as the
// fields they do not know are zero.
struct RulesetAttr {
  std::uint64_t handled_access_fs;
  std::uint64_t handled_access_net;
  std::uint64_t scoped;
};

constexpr std::uint64_t kWriteAccessAbi1 = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                                           LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                                           LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                                           LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                                           LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
constexpr std::uint64_t kFileAccess = LANDLOCK_ACCESS_FS_WRITE_FILE | kAccessTruncate;

std::uint64_t handled_writes(int abi) {
  std::uint64_t access = kWriteAccessAbi1;
  if (abi >= 2) access |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) access |= kAccessTruncate;
  return access;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

int landlock_abi() {
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

UniqueFd make_pe_ruleset(int abi, const std::vector<std::string>& writable_paths) {
  RulesetAttr attr{};
  attr.handled_access_fs = handled_writes(abi);
  if (abi >= 6) attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
  UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)));
  if (!ruleset) fail("landlock_create_ruleset");
  for (const auto& path : writable_paths) {
    UniqueFd beneath(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!beneath) fail("writable path " + path);
    struct stat st {};
    if (::fstat(beneath.get(), &st) != 0) fail("writable path " + path);
    landlock_path_beneath_attr rule{};
    rule.allowed_access = attr.handled_access_fs & (S_ISDIR(st.st_mode) ? ~0ULL : kFileAccess);
    rule.parent_fd = beneath.get();
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
      fail("landlock_add_rule " + path);
  }
  return ruleset;
}

}  // namespace vdtu::sandbox
