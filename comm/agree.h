// Agreement on failure: run a phase (parsing the config, opening data, reading a checkpoint) on
// every rank, then agree with one reduction whether any rank failed. If one did, every rank
// leaves together with the same exit code and only the lowest failing rank prints its message:
// no rank is left waiting in a collective, and the user sees one line.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"

namespace moe::comm {

// Thrown on every rank after a failed agreed phase; the message is already printed.
class AgreedFailure : public std::runtime_error {
 public:
  explicit AgreedFailure(int code) : std::runtime_error("agreed failure"), code_(code) {}
  int exit_code() const { return code_; }

 private:
  int code_;
};

// Prints "moe: error: <msg>" to stderr (one line).
void print_error(const std::string& msg);

// Runs fn; if fn throws moe::Error on any rank, throws AgreedFailure on every rank.
void run_agreed(Communicator& world, const std::function<void()>& fn);

// Runs fn; if it throws on any rank, every rank throws the lowest failing rank's error (same
// message, same exit code: InputError for bad input, else Error) instead of printing it. For
// collective library calls (checkpoint save and load) whose callers, and tests, need the message
// on every rank; wrapped in run_agreed, it still prints once.
void run_agreed_rethrow(Communicator& world, const std::function<void()>& fn);

// `text` of rank `root` on every rank (collective).
std::string broadcast_text(Communicator& world, const std::string& text, int root);

}  // namespace moe::comm
