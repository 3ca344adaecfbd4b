#pragma once
// Samples that benchmark PEs write as "metric value" lines into a file in a
// private temporary directory, read back by the suite that started them.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace vdtu::bench {

class SampleWriter {
 public:
  explicit SampleWriter(const std::string& path) : out_(path) {}
  void add(const std::string& metric, double value) { out_ << metric << ' ' << value << '\n'; }

 private:
  std::ofstream out_;
};

inline std::map<std::string, std::vector<double>> read_samples(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(path);
  std::string metric;
  double value = 0;
  while (in >> metric >> value) out[metric].push_back(value);
  return out;
}

// A directory of its own under /tmp, removed with what is in it. The
// benchmark PEs run sandboxed under uids of their own: they may create their
// sample files in it (write and search for everyone), but nobody but us can
// list it. Landlock lets PEs write beneath /tmp.
class SampleDirectory {
 public:
  SampleDirectory() {
    char name[] = "/tmp/vdtu-bench-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
    if (::chmod(name, 0733) != 0) throw std::runtime_error("cannot open the sample directory to the PEs");
  }
  SampleDirectory(const SampleDirectory&) = delete;
  SampleDirectory& operator=(const SampleDirectory&) = delete;
  ~SampleDirectory() {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) { return files_.emplace_back(path_ + "/" + name); }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

}  // namespace vdtu::bench
