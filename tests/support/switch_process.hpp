#pragma once
// A `vdtu switch` process for a test: its own socket in a fresh directory,
// its output in a log file there; stopped and cleaned up when the object goes.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/program_process.hpp"

namespace vdtu::testing {

class SwitchProcess {
 public:
  explicit SwitchProcess(const std::vector<std::string>& args) {
    std::string pattern = "/tmp/vdtu-switch-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    socket_ = dir_ + "/switch.sock";
    std::vector<std::string> words{VDTU_PATH, "switch", "--socket", socket_};
    words.insert(words.end(), args.begin(), args.end());
    process_ = std::make_unique<ProgramProcess>(words, dir_ + "/switch.log");
    if (!wait_for_log("listening on", std::chrono::seconds(30))) {
      throw std::runtime_error("vdtu switch did not start: " + log());
    }
  }
  SwitchProcess(const SwitchProcess&) = delete;
  SwitchProcess& operator=(const SwitchProcess&) = delete;
  ~SwitchProcess() {
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] const std::string& socket() const { return socket_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string log() const { return process_->log(); }
  [[nodiscard]] bool wait_for_log(const std::string& needle, std::chrono::milliseconds limit) const {
    return process_->wait_for_log(needle, limit);
  }
  int stop() { return process_->stop(); }

 private:
  std::string dir_;
  std::string socket_;
  std::unique_ptr<ProgramProcess> process_;
};

}  // namespace vdtu::testing
