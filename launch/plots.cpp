// The plotting scripts and how they are run.
#include "launch/plots.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace moe::launch {

const char* const kCoordPlotScript = R"PY(
import csv, math, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
path, preset, out, axis = sys.argv[1:5]
# The mean over layers (or the one value outside the blocks), at the last step.
rows = [r for r in csv.DictReader(open(path)) if r["preset"] == preset and r["layer"] in ("mean", "-1")]
in_blocks = {r["site"] for r in rows if r["layer"] == "mean"}
rows = [r for r in rows if r["layer"] == "mean" or r["site"] not in in_blocks]
last = max(int(r["step"]) for r in rows)
rows = [r for r in rows if int(r["step"]) == last]
sites = sorted({r["site"] for r in rows})
keys = [("rms", "RMS"), ("delta_rms", "change since init"), ("eff_update", "effective update"),
        ("prop_update", "propagating update"), ("grad_rms", "gradient RMS")]
cols = 6
nrow = (len(sites) + cols - 1) // cols
fig, ax = plt.subplots(nrow, cols, figsize=(2.7 * cols, 2.4 * nrow), squeeze=False)
for j, site in enumerate(sites):
    a = ax[j // cols][j % cols]
    for c, (key, label) in enumerate(keys):
        pts = sorted((float(r["scale"]), float(r[key])) for r in rows if r["site"] == site and r[key] not in ("", "0"))
        pts = [p for p in pts if p[1] > 0 and math.isfinite(p[1])]
        if pts:
            a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=f"C{c}", label=label)
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_title(site, fontsize=9)
    a.tick_params(labelsize=7)
for j in range(len(sites), nrow * cols):
    ax[j // cols][j % cols].axis("off")
handles = [plt.Line2D([], [], color=f"C{c}", marker="o", ms=3) for c in range(len(keys))]
fig.legend(handles, [k[1] for k in keys], loc="lower right", fontsize=8)
fig.suptitle(f"coordinate check: {preset}, axis {axis}, step {last}; x: scale, y: value (log-log)")
fig.tight_layout()
fig.savefig(out, dpi=80)
)PY";

const char* const kSweepPlotScript = R"PY(
import csv, math, sys
from collections import defaultdict
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
path, out = sys.argv[1:3]
rows = list(csv.DictReader(open(path)))
presets = list(dict.fromkeys(r["preset"] for r in rows))
fig, ax = plt.subplots(1, len(presets), figsize=(4.4 * len(presets), 3.8), squeeze=False, sharey=True)
finite = [float(r["final_loss"]) for r in rows if r["diverged"] == "0" and r["status"] == "finished"]
low = min(finite) if finite else 0.0
# Near the optima the curves differ by hundredths: show 0.5 nats above the best loss, clip the rest.
top = min(max(finite), low + 0.5) if finite else 1.0
for j, p in enumerate(presets):
    # scale -> lr -> losses over seeds; a diverged seed makes the point diverged (as the summary)
    curves, diverged = defaultdict(lambda: defaultdict(list)), defaultdict(set)
    for r in rows:
        if r["preset"] != p:
            continue
        s, lr = float(r["scale"]), float(r["lr"])
        if r["diverged"] == "1":
            diverged[s].add(lr)
        elif r["status"] == "finished":
            curves[s][lr].append(float(r["final_loss"]))
    a = ax[0][j]
    optima = []
    for c, scale in enumerate(sorted(set(curves) | set(diverged))):
        pts = sorted((lr, sum(v) / len(v)) for lr, v in curves[scale].items() if lr not in diverged[scale])
        color = f"C{c}"
        if pts:
            a.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", ms=4, color=color, label=f"scale {scale:g}")
            best = min(pts, key=lambda q: q[1])
            a.plot([best[0]], [best[1]], marker="*", ms=14, color=color, mec="k", zorder=5)
            optima.append((scale, best[0]))
        for lr in sorted(diverged[scale]):
            a.plot([lr], [top], marker="x", ms=8, color=color, zorder=5)
    title = p
    if len(optima) >= 2:
        title += f": optimum drift {math.log10(optima[-1][1] / optima[0][1]):+.2f} decades"
    a.set_title(title, fontsize=10)
    a.set_ylim(low - 0.02 * (top - low + 1e-9), top + 0.05 * (top - low + 1e-9))
    a.set_xscale("log")
    a.set_xlabel("learning rate")
    if j == 0:
        judged = {r.get("judged_by", "train") for r in rows if r["status"] == "finished"}
        a.set_ylabel("final validation loss" if judged == {"val"} else "final loss (cross-entropy)")
    a.grid(alpha=0.3)
    a.legend(fontsize=7)
fig.suptitle("final loss against learning rate (star: optimum per scale; x: diverged; y clipped 0.5 above the best)",
             fontsize=9)
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
