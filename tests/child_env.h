// For a forked child that starts `moe` (or mpirun) on its own: drops the MPI launcher's
// variables inherited from a test running under mpirun, so that the child is a fresh
// singleton (or a fresh job) and never joins the test's own MPI job.
#pragma once
#include <stdlib.h>

#include <string>

extern char** environ;

namespace moe::test {

inline void drop_mpi_environment() {
  for (char** e = environ; *e;) {
    const std::string kv = *e;
    if (kv.rfind("OMPI_COMM_WORLD", 0) == 0 || kv.rfind("PMIX_", 0) == 0 ||
        kv.rfind("OMPI_MCA_orte_ess", 0) == 0)
      ::unsetenv(kv.substr(0, kv.find('=')).c_str());  // shifts the later entries down
    else
      ++e;
  }
}

}  // namespace moe::test
