#include "child_process.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace vdtu::cluster {

pid_t spawn(std::vector<std::string> words, const SpawnActions& actions) {
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv.at(0), actions.get(), nullptr, argv.data(), environ);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "cannot start " + words.at(0));
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace vdtu::cluster
