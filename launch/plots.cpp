// The plotting scripts and how they are run.
#include "launch/plots.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace moe::launch {

const char* const kCoordPlotScript = R"PY(
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
path, preset, out, axis = sys.argv[1:5]
rows = [r for r in csv.DictReader(open(path)) if r["preset"] == preset]
sites = sorted({r["site"] for r in rows})
steps = sorted({int(r["step"]) for r in rows})
shown = sorted({steps[0], steps[len(steps) // 2], steps[-1]})
fig, ax = plt.subplots(2, len(sites), figsize=(2.6 * len(sites), 5.2), squeeze=False)
for j, site in enumerate(sites):
    for i, (key, label) in enumerate([("rms", "RMS"), ("delta_rms", "RMS of change since init")]):
        a = ax[i][j]
        for c, s in enumerate(shown):
            pts = sorted((float(r["scale"]), float(r[key])) for r in rows if r["site"] == site and int(r["step"]) == s)
            if key == "delta_rms" and s == 0:
                continue  # no change at init
            a.plot([p[0] for p in pts], [max(p[1], 1e-12) for p in pts], marker="o", color=f"C{c}", label=f"step {s}")
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_title(site if i == 0 else "", fontsize=9)
        a.set_xlabel(f"scale ({axis})", fontsize=8)
        if j == 0:
            a.set_ylabel(label, fontsize=8)
        a.tick_params(labelsize=7)
ax[0][0].legend(fontsize=7)
fig.suptitle(f"coordinate check: {preset}, axis {axis}")
fig.tight_layout()
fig.savefig(out, dpi=90)
)PY";

const char* const kSweepPlotScript = R"PY(
import csv, sys
from collections import defaultdict
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
path, out = sys.argv[1:3]
rows = list(csv.DictReader(open(path)))
presets = sorted({r["preset"] for r in rows})
fig, ax = plt.subplots(1, len(presets), figsize=(4.2 * len(presets), 3.6), squeeze=False, sharey=True)
for j, p in enumerate(presets):
    curves = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["preset"] == p and r["final_loss"] not in ("", "nan") and r["diverged"] == "0":
            curves[float(r["scale"])][float(r["lr"])].append(float(r["final_loss"]))
    a = ax[0][j]
    for scale in sorted(curves):
        lrs = sorted(curves[scale])
        a.plot(lrs, [sum(curves[scale][l]) / len(curves[scale][l]) for l in lrs], marker="o", label=f"scale {scale:g}")
    a.set_xscale("log")
    a.set_title(p)
    a.set_xlabel("learning rate")
    if j == 0:
        a.set_ylabel("final loss")
    a.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out, dpi=90)
)PY";

std::string render_plot(const char* script, const std::vector<std::string>& args) {
  const char* python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  char tmpl[] = "/tmp/moe-plot-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return "cannot create a temporary file";
  close(fd);
  std::ofstream(tmpl) << script;
  std::string cmd = std::string(python) + " " + tmpl;
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    int rc = pclose(p);
    std::remove(tmpl);
    if (rc == 0) return "";
    return "no plot (python3 with matplotlib failed: " + out.substr(0, 200) + ")";
  }
  std::remove(tmpl);
  return "no plot (cannot run python3)";
}

}  // namespace moe::launch
