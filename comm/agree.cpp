// run_agreed: one all-reduce decides whether a phase failed anywhere.
#include "comm/agree.h"

#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "src/core/error.h"

namespace moe::comm {

void print_error(const std::string& msg) {
  std::string line = msg;
  for (char& c : line)
    if (c == '\n') c = ' ';
  std::fprintf(stderr, "moe: error: %s\n", line.c_str());
  std::fflush(stderr);
}

namespace {

// Runs fn on this rank only: 0, or the exit code of what it threw (its message into msg).
int64_t run_capturing(const std::function<void()>& fn, std::string& msg) {
  try {
    fn();
  } catch (const Error& e) {
    msg = e.what();
    return e.exit_code();
  } catch (const std::exception& e) {
    msg = e.what();
    return kExitInternal;
  }
  return 0;
}

}  // namespace

void run_agreed(Communicator& world, const std::function<void()>& fn) {
  std::string msg;
  const int64_t code = run_capturing(fn, msg);
  int64_t v[2] = {code, code ? -int64_t(world.rank()) : int64_t(INT_MIN)};
  world.all_reduce(v, 2, DType::I64, ReduceOp::Max);
  if (v[0] == 0) return;
  if (code && -v[1] == world.rank()) print_error(msg);
  throw AgreedFailure(int(v[0]));
}

void run_agreed_rethrow(Communicator& world, const std::function<void()>& fn) {
  std::string msg;
  const int64_t code = run_capturing(fn, msg);
  int64_t v[2] = {code ? 1 : 0, code ? -int64_t(world.rank()) : int64_t(INT_MIN)};
  world.all_reduce(v, 2, DType::I64, ReduceOp::Max);
  if (v[0] == 0) return;
  const int root = int(-v[1]);
  int64_t failed = code;
  world.broadcast(&failed, 1, DType::I64, root);
  const std::string shared = broadcast_text(world, msg, root);
  if (failed == kExitBadInput) throw InputError(shared, true);
  throw Error(shared, int(failed));
}

std::string broadcast_text(Communicator& world, const std::string& text, int root) {
  // Bytes travel as 64-bit words (the interface has no byte type).
  int64_t len = int64_t(text.size());
  world.broadcast(&len, 1, DType::I64, root);
  std::vector<int64_t> words((len + 7) / 8 + 1, 0);
  if (world.rank() == root) std::memcpy(words.data(), text.data(), text.size());
  world.broadcast(words.data(), int64_t(words.size()), DType::I64, root);
  return std::string(reinterpret_cast<const char*>(words.data()), size_t(len));
}

}  // namespace moe::comm
