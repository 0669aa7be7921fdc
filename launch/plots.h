// Plotting through Debian's python3-matplotlib: the scripts are compiled in, written next to
// the data and run, so plots work wherever the binary is. Returns "" on success, else why not.
#pragma once
#include <string>
#include <vector>

namespace moe::launch {

extern const char* const kCoordPlotScript;  // args: csv preset png axis
extern const char* const kSweepPlotScript;  // args: csv (moe sweep --report) png

std::string render_plot(const char* script, const std::vector<std::string>& args);

}  // namespace moe::launch
