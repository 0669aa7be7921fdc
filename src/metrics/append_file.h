// A log file that is only appended to (metrics.jsonl), every write checked: a full disk or a
// lost file system stops the job with the file's name and the system's reason instead of
// leaving a silently empty log.
#pragma once
#include <string>

namespace moe::metrics {

class AppendFile {
 public:
  AppendFile() = default;
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Opens (creating) `path` for appending; throws moe::Error "cannot open <path>: <reason>".
  void open(const std::string& path);
  bool is_open() const { return fd_ >= 0; }
  // Appends all of `text`; throws moe::Error "cannot write <path>: <reason>".
  void append(const std::string& text);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace moe::metrics
