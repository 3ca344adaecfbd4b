#pragma once
// Which counters of one sending key were seen: the highest, and a map of the
// `Bits` counters below it, so datagrams the network reordered still pass,
// once. Checking and remembering are separate steps: only a datagram that
// proved authentic may move the window, or a forger could push it ahead and
// make every real datagram look old.

#include <array>
#include <cstddef>
#include <cstdint>

namespace vdtu::bridge {

template <std::size_t Bits>
class ReplayWindow {
  static_assert(Bits >= 64 && Bits % 64 == 0);

 public:
  enum class Check : std::uint8_t {
    kNew,     // never seen: may be accepted
    kSeen,    // a second delivery
    kTooOld,  // below the window: cannot tell any more, so it is refused
  };

  [[nodiscard]] Check check(std::uint64_t counter) const {
    if (!any_ || counter > highest_) return Check::kNew;
    if (highest_ - counter >= Bits) return Check::kTooOld;
    return is_set(counter) ? Check::kSeen : Check::kNew;
  }

  // Remembers `counter`; call only when check() said kNew.
  void accept(std::uint64_t counter) {
    if (!any_) {
      any_ = true;
      highest_ = counter;
    }
    if (counter > highest_) forget_through(counter);
    words_[word(counter)] |= bit(counter);
  }

 private:
  static std::size_t word(std::uint64_t counter) { return (counter % Bits) / 64; }
  static std::uint64_t bit(std::uint64_t counter) { return std::uint64_t{1} << (counter % 64); }
  [[nodiscard]] bool is_set(std::uint64_t counter) const {
    return (words_[word(counter)] & bit(counter)) != 0;
  }

  // The slots of highest_+1 .. counter now stand for counters not seen yet.
  void forget_through(std::uint64_t counter) {
    if (counter - highest_ >= Bits) {
      words_.fill(0);
    } else {
      for (std::uint64_t c = highest_ + 1; c <= counter;) {
        if (c % 64 == 0 && counter - c >= 63) {
          words_[word(c)] = 0;
          c += 64;
        } else {
          words_[word(c)] &= ~bit(c);
          ++c;
        }
      }
    }
    highest_ = counter;
  }

  bool any_ = false;
  std::uint64_t highest_ = 0;
  std::array<std::uint64_t, Bits / 64> words_{};
};

}  // namespace vdtu::bridge
