// One error type for the whole project. Checks throw moe::Error carrying the failed condition,
// file:line and (once known) the rank; launch/main.cpp catches it, prints one line and stops every
// rank. InputError marks bad user input (config, data file, checkpoint): exit code 2.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace moe {

// Exit codes: documented in the README.
constexpr int kExitInternal = 1;   // a bug or a failed system call
constexpr int kExitBadInput = 2;   // bad config, data file or checkpoint; a config that does not fit
constexpr int kExitNonFinite = 3;  // non-finite loss or gradient under train.nonfinite = "stop"
constexpr int kExitTimeout = 4;    // a collective outlived parallel.timeout_s (a rank hangs or died)
constexpr int kExitStopped = 5;    // stopped by a signal at a step boundary, checkpoint written: resumable

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, int exit_code = kExitInternal)
      : std::runtime_error(msg), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Bad user input. `collective` means every rank reaches the same error at the same point (for
// example, all ranks parse the same config), so the ranks can exit together without MPI_Abort.
class InputError : public Error {
 public:
  explicit InputError(const std::string& msg, bool collective = false)
      : Error(msg, kExitBadInput), collective_(collective) {}
  bool collective() const { return collective_; }

 private:
  bool collective_;
};

namespace detail {
// Streams all arguments into one string: MOE_CHECK(x > 0, "x = ", x).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_check(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace moe

#define MOE_CHECK(cond, ...)                                                         \
  do {                                                                               \
    if (!(cond)) ::moe::detail::throw_check(#cond, __FILE__, __LINE__,               \
                                            ::moe::detail::cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

// Throws InputError with a message (no file:line: the message names the user's key or file).
#define MOE_INPUT_ERROR(...) throw ::moe::InputError(::moe::detail::cat(__VA_ARGS__))
