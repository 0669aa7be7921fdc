// Non-blocking TCP connects to every target at once, judged by poll (see peer_probe.h).
#include "comm/peer_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace moe::comm {

namespace {

std::string own_address() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "";
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host, nullptr, &hints, &res) != 0 || !res) return "";
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf, sizeof buf);
  ::freeaddrinfo(res);
  return buf;
}

}  // namespace

ProbeListener::ProbeListener() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  port_ = ntohs(a.sin_port);
  address_ = own_address();
}

ProbeListener::~ProbeListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<Reach> probe(const std::vector<ProbeTarget>& targets, double timeout_s) {
  const size_t n = targets.size();
  std::vector<Reach> out(n, Reach::kUnusable);
  std::vector<pollfd> fds;
  std::vector<size_t> which;
  for (size_t i = 0; i < n; ++i) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(targets[i].port));
    if (targets[i].port <= 0 || ::inet_pton(AF_INET, targets[i].address.c_str(), &a.sin_addr) != 1) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      out[i] = Reach::kAnswers;
      ::close(fd);
    } else if (errno == EINPROGRESS) {
      out[i] = Reach::kSilent;  // until poll says otherwise
      fds.push_back({fd, POLLOUT, 0});
      which.push_back(i);
    } else {
      out[i] = errno == ECONNREFUSED ? Reach::kRefused : Reach::kSilent;  // ENETUNREACH etc.: no path
      ::close(fd);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  size_t open = fds.size();
  while (open > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || ::poll(fds.data(), fds.size(), int(left)) < 0) break;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].fd < 0 || !fds[k].revents) continue;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fds[k].fd, SOL_SOCKET, SO_ERROR, &err, &len);
      out[which[k]] = err == 0 ? Reach::kAnswers : err == ECONNREFUSED ? Reach::kRefused : Reach::kSilent;
      ::close(fds[k].fd);
      fds[k].fd = -1;  // poll skips negative descriptors
      --open;
    }
  }
  for (auto& p : fds)
    if (p.fd >= 0) ::close(p.fd);
  return out;
}

}  // namespace moe::comm
