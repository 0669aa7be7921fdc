// Formats failed checks as "file:line: check `cond` failed: message".
#include "src/core/error.h"

namespace moe::detail {

void throw_check(const char* cond, const char* file, int line, const std::string& msg) {
  std::ostringstream os;
  os << file << ":" << line << ": check `" << cond << "` failed";
  if (!msg.empty()) os << ": " << msg;
  throw Error(os.str());
}

}  // namespace moe::detail
