// The watchdog's network probe (comm/peer_probe.h): a listening rank answers, a host without
// the listener refuses, a target without an address is not tried. A silent path (a link that
// is down) needs a second network: tests/cluster/cluster_test.sh sets one down.
#include "comm/peer_probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace moe::comm {
namespace {

// A port nobody listens on: bound, read back, closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(PeerProbe, ListenerAnswersAndClosedPortRefuses) {
  ProbeListener l;
  ASSERT_GT(l.port(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Reach> r = probe({{"127.0.0.1", l.port()}, {"127.0.0.1", closed_port()}, {"", 5}, {"x", 5}}, 2.0);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], Reach::kAnswers);
  EXPECT_EQ(r[1], Reach::kRefused);
  EXPECT_EQ(r[2], Reach::kUnusable);
  EXPECT_EQ(r[3], Reach::kUnusable);
  EXPECT_LT(took, 1.0) << "answers and refusals must not wait for the timeout";
}

TEST(PeerProbe, ManyProbesOfOneListenerAllAnswer) {
  // The listener never accepts: the kernel's backlog must still complete every handshake.
  ProbeListener l;
  ASSERT_GT(l.port(), 0);
  std::vector<ProbeTarget> t(32, ProbeTarget{"127.0.0.1", l.port()});
  for (Reach r : probe(t, 2.0)) EXPECT_EQ(r, Reach::kAnswers);
}

}  // namespace
}  // namespace moe::comm
