#!/usr/bin/env python3
"""What each GoogleTest run in a log did, for scripts/gpu_check.sh's summary.

Reads the console output that gpu_check.sh appends to tests.log, one section per step (a line
"=== NAME (limit ...)" opens each), and reports per section the tests passed, failed and
skipped, each skip with the reason its GTEST_SKIP gave, and the test that was running when the
output stops without a result (a step that timed out or crashed). Read from the console rather
than from --gtest_output JSON, which is written only when the binary ends: a timed-out step
still has its console lines. Skips matter here: a green run whose GPU cases all skipped is not
a GPU result, and the summary must say so.

  gtest_summary.py LOG            JSON on stdout: {"runs": [{"step", "passed", "failed",
                                  "skipped": [{"test", "why"}], "interrupted"}]}
  gtest_summary.py --text LOG     the same as a few lines of text, skips grouped by reason
"""
import json
import re
import sys

# A test's own result line ends in its time; the recap at the end of a run does not.
RESULT = re.compile(r"^\[\s*(OK|FAILED|SKIPPED)\s*\] ([^\s,]+).*\((\d+) ms\)\s*$")
RUN = re.compile(r"^\[ RUN\s*\] (\S+)")
STEP = re.compile(r"^=== (\S+) \(limit")
# Colour codes, which GoogleTest writes under mpirun (a pseudo-terminal) unless told not to.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse(lines):
    runs, cur, running, why = [], None, None, []

    def close():  # a section whose last test has no result line was cut off
        if cur is not None and running is not None:
            cur["interrupted"] = running

    for line in lines:
        line = ANSI.sub("", line.rstrip("\n"))
        m = STEP.match(line)
        if m:
            close()
            cur = {"step": m.group(1), "passed": 0, "failed": [], "skipped": [],
                   "interrupted": None}
            runs.append(cur)
            running, why = None, []
            continue
        if cur is None:
            continue
        m = RUN.match(line)
        if m:
            running, why = m.group(1), []
            continue
        m = RESULT.match(line)
        if m:
            kind, name = m.group(1), m.group(2)
            if kind == "OK":
                cur["passed"] += 1
            elif kind == "FAILED":
                cur["failed"].append(name)
            else:
                reason = " ".join(w for w in why if w) or "(no reason given)"
                cur["skipped"].append({"test": name, "why": reason})
            running, why = None, []
            continue
        if running is not None:
            if line.endswith(": Skipped"):
                why = []  # the reason follows this line
            else:
                why.append(line.strip())
    close()
    return runs


def text(runs):
    out = []
    for r in runs:
        out.append("%s: %d passed, %d failed, %d skipped%s" % (
            r["step"], r["passed"], len(r["failed"]), len(r["skipped"]),
            ", interrupted in " + r["interrupted"] if r["interrupted"] else ""))
        for name in r["failed"]:
            out.append("  FAILED " + name)
        reasons = {}
        for s in r["skipped"]:
            reasons.setdefault(s["why"], []).append(s["test"])
        for why, names in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            out.append("  skipped %d: %s (%s)" % (len(names), why, shown))
    return "\n".join(out)


def main(argv):
    as_text = argv[1:2] == ["--text"]
    paths = argv[2:] if as_text else argv[1:]
    if len(paths) != 1:
        sys.exit("usage: gtest_summary.py [--text] LOG")
    try:
        with open(paths[0], errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        sys.exit("gtest_summary.py: %s" % e)
    runs = parse(lines)
    print(text(runs) if as_text else json.dumps({"runs": runs}))


if __name__ == "__main__":
    main(sys.argv)
