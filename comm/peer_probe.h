// Can another rank's node be reached over the network? The watchdog (comm/watchdog.h) asks when
// a collective has timed out and every peer's heartbeat says it is waiting too: what a node whose
// link is down looks like while the shared file system still carries its heartbeats (its storage
// on another network than its MPI fabric, or, in tests, a node in a network namespace).
// Each rank listens on a TCP port that it never accepts on: the kernel completes the handshake
// from the backlog, so a connect that succeeds proves the peer's host and the path to it work, a
// refusal that the host answers but the process is gone, and silence that the path is down.
#pragma once
#include <string>
#include <vector>

namespace moe::comm {

// A listening socket on every address of this host, on a port the kernel picks.
class ProbeListener {
 public:
  ProbeListener();  // best effort: port() is 0 when it could not listen
  ~ProbeListener();
  ProbeListener(const ProbeListener&) = delete;
  ProbeListener& operator=(const ProbeListener&) = delete;

  int port() const { return port_; }
  // The IPv4 address this host's name resolves to ("" when it does not): how peers reach it.
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::string address_;
};

enum class Reach { kAnswers, kRefused, kSilent, kUnusable };

struct ProbeTarget {
  std::string address;  // IPv4, dotted
  int port = 0;
};

// Connects to every target at once and waits up to timeout_s for all of them: kAnswers,
// kRefused (host up, nothing listening), kSilent (no answer in time, or no route), kUnusable
// (no address or port to try).
std::vector<Reach> probe(const std::vector<ProbeTarget>& targets, double timeout_s);

}  // namespace moe::comm
