// Starting other programs from `moe sweep` (mpirun, moe train, sbatch). Children get the
// environment this process was started with, read back from /proc/self/environ: MPI_Init has
// since added its own variables, and a child mpirun that inherits a singleton's variables
// believes it is one of its ranks.
#pragma once
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace moe::launch {

// The start-up environment ("KEY=VALUE"), with `extra` added or replaced.
std::vector<std::string> launch_environment(const std::map<std::string, std::string>& extra = {});
// Value of a variable in the start-up environment ("" if unset).
std::string start_env(const std::string& name);
// Absolute path of this executable (/proc/self/exe resolved: a child reading it sees its own).
std::string self_executable();
// Starts argv[0] (searched in PATH) in a process group of its own, with stdin from /dev/null
// and stdout and stderr appended to `log` ("" keeps ours). Throws moe::Error if it cannot start.
// With parent_death_signal > 0 the child gets that signal when this process dies, even by
// SIGKILL (it starts through kParentDeathExec, which sets PR_SET_PDEATHSIG and execs argv).
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& log,
            int parent_death_signal = 0);
// `moe <kParentDeathExec> <signal> <parent pid> <program> <args...>`: main() hands these
// arguments to exec_with_parent_death before anything else (no MPI). It asks for <signal> when
// <parent pid> dies, exits 128 + <signal> if that parent is already gone, and execs the program.
inline const char* const kParentDeathExec = "--exec-with-parent-death";
[[noreturn]] void exec_with_parent_death(int argc, char** argv);
// Exit code of a finished child: its status, or 128 + signal. -1 while it still runs (nohang).
int wait_child(pid_t pid, bool nohang = false);
// Runs argv to the end; each line it prints on stdout goes to on_line as it arrives (stderr
// stays ours). Returns the exit code.
int run_with_lines(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::function<void(const std::string&)>& on_line);
// argv as one shell command line, quoted where needed (for logs and submit.sh).
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace moe::launch
