// Key-by-key comparison of two resolved configs, and the rule for which keys may change on a
// resume.
#include "src/run/config_changes.h"

#include <toml++/toml.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include "src/core/error.h"
#include "src/optim/schedule.h"

namespace moe::run {
namespace {

// Every leaf of a TOML table as "a.b.c" -> its TOML text (arrays as one value).
void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (auto&& [k, v] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = v.as_table()) {
      flatten(*sub, key, out);
      continue;
    }
    std::ostringstream os;
    if (const auto* d = v.as_floating_point()) {  // the shortest text that reads back the same
      char buf[32];
      os << std::string_view(buf, size_t(std::to_chars(buf, buf + sizeof buf, d->get()).ptr - buf));
    } else {
      v.visit([&](auto&& x) { os << x; });
    }
    out[key] = os.str();
  }
}

std::map<std::string, std::string> flat(const config::Config& c) {
  std::map<std::string, std::string> out;
  flatten(toml::parse(config::to_toml(c)), "", out);
  return out;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The step where the decay ends (optim.decay_steps, or train.steps when that is 0) when the
// checkpoint was saved, and now.
std::pair<int64_t, int64_t> decay_ends(const ConfigDiff& diff, const config::Config& now) {
  const auto saved = [&](const char* key, int64_t now_value) {
    for (const ConfigChange& c : diff.changes)
      if (c.key == key) return int64_t(std::atoll(c.before.c_str()));
    return now_value;
  };
  return {optim::decay_end(saved("optim.decay_steps", now.optim.decay_steps), saved("train.steps", now.train.steps)),
          optim::decay_end(now.optim.decay_steps, now.train.steps)};
}

// What moving the decay's end does to the learning rate from the resume on.
std::string decay_note(const config::Config& now, std::pair<int64_t, int64_t> ends, int64_t saved_step) {
  const config::OptimConfig& o = now.optim;
  const double a = optim::lr_factor(o.schedule, saved_step + 1, o.warmup, ends.first, o.min_lr_ratio);
  const double b = optim::lr_factor(o.schedule, saved_step + 1, o.warmup, ends.second, o.min_lr_ratio);
  char buf[480];
  std::snprintf(buf, sizeof buf,
                " (optim.schedule = \"%s\" decays until optim.decay_steps, or train.steps when that is 0: its end "
                "moves from step %lld to %lld, so from step %lld on the decay is re-stretched and the learning rate "
                "at step %lld becomes %.4g x optim.lr instead of %.4g x; to change the steps and keep the schedule, "
                "set optim.decay_steps = %lld)",
                o.schedule.c_str(), (long long)ends.first, (long long)ends.second, (long long)saved_step + 1,
                (long long)saved_step + 1, b, a, (long long)ends.first);
  return buf;
}

}  // namespace

ConfigDiff diff_configs(const std::string& saved, const std::string& origin, const config::Config& now) {
  // Through the typed reader, so that keys the saved text lacks (it predates them) take their
  // defaults and compare equal to an unchanged default.
  const config::Config old = config::parse_config(saved, origin + " (its stored config)", {}, 0);
  const auto a = flat(old), b = flat(now);
  ConfigDiff d;
  for (const auto& [k, v] : a) d.keys.insert(k);
  for (const auto& [k, v] : b) d.keys.insert(k);
  for (const std::string& k : d.keys) {
    auto x = a.find(k), y = b.find(k);
    const std::string before = x == a.end() ? "(unset)" : x->second, after = y == b.end() ? "(unset)" : y->second;
    if (before != after) d.changes.push_back({k, before, after});
  }
  return d;
}

bool safe_to_change(const std::string& key) {
  for (const char* p : {"parallel.", "checkpoint.", "debug.", "run.stop_"})
    if (starts_with(key, p)) return true;
  for (const char* k : {"run.dir", "train.micro_batch", "train.log_every", "train.eval_every", "train.peak_tflops",
                        "train.memory_limit_gb", "train.nonfinite"})
    if (key == k) return true;
  return false;
}

bool fixed_by_checkpoint(const std::string& key) {
  // Routing and loss weights that no tensor depends on may change when allowed (as
  // ckpt::check_same_model lets them).
  for (const char* k : {"moe.capacity_factor", "moe.aux_loss", "moe.z_loss", "moe.bias_update_rate"})
    if (key == k) return false;
  return starts_with(key, "model.") || starts_with(key, "moe.");
}

std::vector<ConfigChange> check_changes(const ConfigDiff& diff, const std::set<std::string>& allowed,
                                        const std::string& checkpoint, const config::Config& now,
                                        int64_t saved_step,
                                        const std::function<std::string(const std::string&)>& model_note) {
  for (const std::string& k : allowed)
    if (!diff.keys.count(k))
      throw InputError("--allow-change " + k + ": not a key of the config (keys are dotted, e.g. optim.lr)", true);
  // The model first: a checkpoint that does not fit is the news, whatever else changed
  // (worded as ckpt::check_same_model, which checks again while loading).
  for (const ConfigChange& c : diff.changes)
    if (fixed_by_checkpoint(c.key))
      throw InputError(checkpoint + "/manifest.toml: " + c.key + " differs: the checkpoint has " + c.before +
                           ", the config has " + c.after + " (a checkpoint loads only into the same model shape" +
                           (model_note ? model_note(c.key) : std::string()) + ")",
                       true);
  for (const ConfigChange& c : diff.changes) {
    if (safe_to_change(c.key) || allowed.count(c.key)) continue;
    // train.steps and optim.decay_steps matter only through where the decay ends: while that
    // stays (or the schedule is constant), every learning rate is what it was.
    const bool decay = c.key == "train.steps" || c.key == "optim.decay_steps";
    const auto ends = decay_ends(diff, now);
    if (decay && (now.optim.schedule == "constant" || ends.first == ends.second)) continue;
    const std::string what = c.key + " = " + c.before + " when " + checkpoint + " was saved, " + c.after + " now";
    throw InputError(what + (decay ? decay_note(now, ends, saved_step) : std::string()) +
                         ": a resume must compute what the run computed; keep the old value, or pass --allow-change " +
                         c.key + " to change it from here on (recorded in metrics.jsonl and config." +
                         std::to_string(saved_step) + ".toml)",
                     true);
  }
  return diff.changes;
}

}  // namespace moe::run
