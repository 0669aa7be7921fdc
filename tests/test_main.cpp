// GoogleTest main for every suite: initializes MPI (a singleton without mpirun) and keeps the
// output of ranks other than 0 quiet, so a multi-rank run prints one report; a failure on any
// rank still fails the process and so the mpirun.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>

#include "comm/mpi_communicator.h"

namespace {
// On ranks other than 0: print failed assertions only, tagged with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  // What scripts/env.sh exports, for a suite run without it: CMake 3.25's gtest_discover_tests
  // hands a discovered test only the first variable of tests/CMakeLists.txt's MOE_MPI_ENV.
  // Root allowed, oversubscription allowed, the shared-memory and TCP transports; only where
  // unset, and inherited by the mpirun the reliability tests start.
  static const char* const kEnv[][2] = {
      {"OMPI_ALLOW_RUN_AS_ROOT", "1"},      {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"},
      {"OMPI_MCA_pml", "ob1"},              {"OMPI_MCA_btl", "self,vader,tcp"},
      {"OMPI_MCA_rmaps_base_oversubscribe", "1"}};
  for (const auto& kv : kEnv) setenv(kv[0], kv[1], /*overwrite=*/0);
  moe::comm::mpi_init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  int rc = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any && !rc) std::fprintf(stderr, "a test failed on another rank\n");
  moe::comm::mpi_finalize();
  return any;
}
