// Planning a segment's start from what the run directory holds, and applying the plan.
#include "src/run/start.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "src/ckpt/directory.h"
#include "src/ckpt/manifest.h"
#include "src/ckpt/manifest_legacy.h"
#include "src/core/error.h"
#include "src/metrics/append_file.h"
#include "src/metrics/json.h"
#include "src/train/run_metrics.h"

namespace fs = std::filesystem;

namespace moe::run {
namespace {

using train::kMetricsFile;

bool has_metrics(const std::string& run_dir) {
  std::error_code ec;
  const std::string m = run_dir + "/" + kMetricsFile;
  return fs::is_regular_file(m, ec) && fs::file_size(m, ec) > 0;
}

// Whether `dir` lies under `root` once both are resolved (a `latest` may point anywhere).
bool inside(const std::string& dir, const std::string& root) {
  std::error_code ec;
  const std::string d = fs::weakly_canonical(dir, ec).string(), r = fs::weakly_canonical(root, ec).string();
  return !r.empty() && d.size() > r.size() && d.compare(0, r.size(), r) == 0 && d[r.size()] == '/';
}

// .../<run dir>/checkpoints/step_N -> .../<run dir>
std::string run_dir_of(const std::string& checkpoint) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(checkpoint, ec);
  return p.parent_path().filename() == "checkpoints" ? p.parent_path().parent_path().string() : p.parent_path().string();
}

std::string holds(const std::string& run_dir, size_t checkpoints) {
  std::string what = has_metrics(run_dir) ? kMetricsFile : "";
  if (checkpoints) what += (what.empty() ? "" : std::string(" and ")) + std::to_string(checkpoints) + " checkpoint(s)";
  return what;
}

}  // namespace

StartPlan plan_start(const std::string& run_dir, const config::Config& cfg, const StartRequest& req) {
  const std::string root = run_dir + "/checkpoints";
  const std::vector<ckpt::CheckpointEntry> saved = ckpt::list_checkpoints(root);
  const std::optional<RunIdentity> own = read_identity(run_dir);
  const bool results = has_metrics(run_dir) || !saved.empty();
  StartPlan p;
  const auto fresh = [&](bool wipe, const std::string& note) {
    p.kind = StartKind::Fresh;
    p.identity = new_identity();
    p.write_identity = true;
    p.wipe = wipe;
    p.note = note;
    return p;
  };
  if (req.resume.empty()) {
    if (req.overwrite)
      return fresh(true, results ? "--overwrite: the run in " + run_dir + " (" + holds(run_dir, saved.size()) +
                                       ") is removed; a new run starts"
                                 : "");
    if (!results) return fresh(own.has_value(), "");
    throw InputError("run.dir = \"" + run_dir + "\" already holds a run (" + holds(run_dir, saved.size()) +
                         "): continue it with --resume auto, start over with --overwrite, or choose another run.dir",
                     true);
  }
  if (req.resume == "auto" && saved.empty())
    return fresh(results || own,
                 results ? "--resume auto: " + run_dir +
                               " holds no complete checkpoint; the run starts over at step 0 (its metrics.jsonl is "
                               "cut)"
                         : "");
  const std::string from = req.resume == "auto" ? run_dir : req.resume;
  p.checkpoint = ckpt::resolve_checkpoint(from);
  const ckpt::Manifest m = ckpt::read_manifest(p.checkpoint + "/manifest.toml");
  const bool mine = inside(p.checkpoint, root);
  const std::string theirs = m.run_id.empty() ? "a run from before run ids" : "run " + m.run_id;
  const auto foreign = [&](const std::string& here) {
    return InputError("--resume " + req.resume + ": " + p.checkpoint + " belongs to " + theirs + " (in " +
                          run_dir_of(p.checkpoint) + "), but run.dir = \"" + run_dir + "\" holds " + here +
                          ": a run continues only itself; resume it with its own run.dir, or fork it into a new, "
                          "empty run.dir",
                      true);
  };
  if (!results) {  // nothing here: start a new run from another run's checkpoint
    p.kind = StartKind::Fork;
    p.identity = new_identity();
    p.identity.forked = true;
    p.identity.parent_id = m.run_id;
    std::error_code ec;
    p.identity.parent_checkpoint = fs::absolute(p.checkpoint, ec).string();
    p.identity.parent_step = m.step;
    p.write_identity = true;
    p.wipe = own.has_value();
    p.note = "forked from " + theirs + " at " + p.checkpoint + " (step " + std::to_string(m.step) + "): new run " +
             p.identity.id + " in " + run_dir + "; the parent is only read";
  } else if (own) {
    if (m.run_id != own->id && !(m.run_id.empty() && mine)) throw foreign(describe(*own));
    p.kind = StartKind::Continue;
    p.identity = *own;
  } else {  // a directory written before run ids: its own checkpoints only, and it gets an identity
    if (!mine) throw foreign("another run (" + holds(run_dir, saved.size()) + ")");
    p.kind = StartKind::Continue;
    p.identity = new_identity();
    if (!m.run_id.empty()) p.identity.id = m.run_id;
    p.write_identity = true;
  }
  p.step = m.step;
  p.segment = p.kind == StartKind::Fork ? 1 : m.segment + 1;
  const auto note = [&](const std::string& key) { return ckpt::activation_hint(m, key.substr(key.find('.') + 1)); };
  p.changes =
      check_changes(diff_configs(m.config, p.checkpoint, cfg), req.allow_changes, p.checkpoint, cfg, m.step, note);
  if (p.kind == StartKind::Continue) {
    p.note = "resumed " + describe(p.identity) + " from " + p.checkpoint + " at step " + std::to_string(m.step) +
             " (segment " + std::to_string(p.segment) + ")";
    if (req.resume == "auto" && m.step == cfg.train.steps) {
      p.kind = StartKind::Complete;
      p.note = run_dir + ": the run is complete (" + p.checkpoint + " is step " + std::to_string(m.step) +
               " = train.steps); nothing to train";
    }
  }
  return p;
}

std::string plan_to_text(const StartPlan& p) {
  std::ostringstream os;
  os << int(p.kind) << "\n" << p.step << "\n" << p.segment << "\n" << p.identity.id << "\n" << p.checkpoint;
  return os.str();
}

StartPlan plan_from_text(const std::string& text) {
  std::istringstream is(text);
  StartPlan p;
  int kind = 0;
  is >> kind >> p.step >> p.segment >> p.identity.id;
  is.ignore(1);
  std::getline(is, p.checkpoint);
  p.kind = StartKind(kind);
  return p;
}

void begin_segment(const std::string& run_dir, const StartPlan& p, const config::Config& cfg) {
  if (p.wipe) wipe_run(run_dir);
  if (p.write_identity) write_identity(run_dir, p.identity);
  if (p.kind == StartKind::Continue) truncate_metrics_after(run_dir, p.step);
  ckpt::write_file_durably(run_dir + "/config." + std::to_string(p.step) + ".toml",
                           "# The config of the segment that started at step " + std::to_string(p.step) + " (" +
                               describe(p.identity) + ")\n" + config::to_toml(cfg));
  const std::string event = segment_event(p);
  if (!event.empty()) {
    metrics::AppendFile f;
    f.open(run_dir + "/" + kMetricsFile);
    f.append(event + "\n");
  }
}

void wipe_run(const std::string& run_dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool config_file = n.rfind("config.", 0) == 0 && n.size() >= 11 && n.compare(n.size() - 5, 5, ".toml") == 0;
    if (n == kMetricsFile || n == "param_table.txt" || n == fs::path(identity_file(run_dir)).filename() || config_file)
      fs::remove(e.path(), ec);
  }
  fs::remove_all(run_dir + "/checkpoints", ec);
  if (ec) throw Error("cannot remove " + run_dir + "/checkpoints: " + ec.message());
}

std::string segment_event(const StartPlan& p) {
  if (p.kind != StartKind::Continue && p.kind != StartKind::Fork) return "";
  metrics::Json j;
  j.begin_object();
  j.kv("event", p.kind == StartKind::Fork ? "fork" : "resume").kv("at_step", p.step).kv("segment", p.segment);
  j.kv("checkpoint", p.checkpoint).kv("run_id", p.identity.id);
  if (p.kind == StartKind::Fork) j.kv("parent_run_id", p.identity.parent_id);
  const char* restart = std::getenv("SLURM_RESTART_COUNT");
  if (slurm_job() != "-") j.kv("slurm_job", slurm_job());
  if (restart) j.kv("slurm_restart", std::string(restart));
  j.kv("time", utc_now());
  j.key("changes").begin_object();
  for (const ConfigChange& c : p.changes) j.key(c.key).begin_array().value(c.before).value(c.after).end_array();
  j.end_object();
  j.end_object();
  return j.str();
}

void truncate_metrics_after(const std::string& run_dir, int64_t step) {
  const std::string path = run_dir + "/" + kMetricsFile;
  std::ifstream f(path, std::ios::binary);
  if (!f) return;
  int64_t keep = 0, offset = 0;
  bool cut = false;
  for (std::string line; std::getline(f, line);) {
    std::map<std::string, double> v;
    const int64_t next = offset + int64_t(line.size()) + (f.eof() ? 0 : 1);
    // Step records carry "step"; segment events "at_step" (the step they started from).
    const bool complete = train::parse_metrics_line(line, v) && (v.count("step") || v.count("at_step"));
    const double at = v.count("step") ? v["step"] : v["at_step"];
    if (!complete || at > double(step)) {
      cut = true;
      break;
    }
    keep = offset = next;
  }
  if (cut && ::truncate(path.c_str(), keep) != 0) throw Error("cannot truncate " + path + ": " + std::strerror(errno));
}

}  // namespace moe::run
