// The run archive appended to a guest's initramfs: the newc layout the kernel
// unpacks, checked field by field and by unpacking it with busybox cpio.
#include "vm/cpio_archive.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace vdtu::vm {
namespace {

TEST(CpioArchive, EntriesAreNewcWithFourBytePaddingAndATrailer) {
  CpioArchive archive;
  archive.add_directory("vdtu");
  archive.add_file("vdtu/run", "echo hi\n", 0755);
  const auto bytes = archive.finish();
  ASSERT_EQ(bytes.substr(0, 6), "070701");
  EXPECT_EQ(bytes.size() % 4, 0U);
  // The directory: mode 040755, name "vdtu" (namesize 5), no data.
  EXPECT_EQ(bytes.substr(14, 8), "000041ed");
  EXPECT_EQ(bytes.substr(94, 8), "00000005");
  EXPECT_EQ(bytes.substr(110, 5), std::string("vdtu\0", 5));
  // The file starts at 4-byte alignment after the header and name.
  const auto file = bytes.find("070701", 6);
  ASSERT_NE(file, std::string::npos);
  EXPECT_EQ(file % 4, 0U);
  EXPECT_EQ(bytes.substr(file + 14, 8), "000081ed");
  EXPECT_EQ(bytes.substr(file + 54, 8), "00000008");  // filesize
  EXPECT_NE(bytes.find("TRAILER!!!"), std::string::npos);
}

TEST(CpioArchive, RefusesPathsOutsideTheArchive) {
  CpioArchive archive;
  for (const char* bad : {"", "/etc/passwd", "..", "../x", "a/../../x", "a/.."})
    EXPECT_THROW(archive.add_file(bad, "x"), std::invalid_argument) << bad;
  EXPECT_THROW(archive.add_directory("/vdtu"), std::invalid_argument);
  EXPECT_NO_THROW(archive.add_file("a..b", "x"));  // a name with dots is fine
}

TEST(CpioArchive, BusyboxUnpacksWhatItHolds) {
  if (::access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "busybox is not installed";
  CpioArchive archive;
  archive.add_directory("vdtu");
  archive.add_directory("vdtu/deep");
  const std::string odd_size("abcde\0fg", 8);
  archive.add_file("vdtu/deep/data", odd_size, 0600);
  archive.add_file("vdtu/run", "#!/bin/sh\nexit 3\n", 0755);
  std::string dir = (std::filesystem::temp_directory_path() / "vdtu-cpio-XXXXXX").string();
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  {
    std::ofstream out(dir + "/a.cpio", std::ios::binary);
    out << archive.finish();
  }
  const auto command = "cd " + dir + " && /bin/busybox cpio -i -d < a.cpio 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);  // NOLINT(concurrency-mt-unsafe, cert-env33-c): a test
  std::ifstream data(dir + "/vdtu/deep/data", std::ios::binary);
  std::stringstream got;
  got << data.rdbuf();
  EXPECT_EQ(got.str(), odd_size);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/vdtu/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755U);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vdtu::vm
