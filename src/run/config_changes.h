// What may change between the segments of a run. A resume (or a fork) compares the resolved
// config its checkpoint was saved with against the config it starts with, key by key. Keys that
// only say how the run is laid out, logged, evaluated, checkpointed or stopped may change
// freely; any other change alters what the run computes and is refused with one line naming the
// key, the old and the new value, unless the user allows that key (`moe train --allow-change
// KEY`). The model's shape and forward pass never change, whatever is allowed: the checkpoint's
// weights belong to them.
#pragma once
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace moe::run {

struct ConfigChange {
  std::string key;            // dotted: "optim.lr"
  std::string before, after;  // TOML value text; "(unset)" for an absent optional key
};

struct ConfigDiff {
  std::vector<ConfigChange> changes;
  std::set<std::string> keys;  // every key either config sets
};

// Every resolved key whose value differs between `saved` (a resolved config's TOML text, as a
// manifest holds it; keys it lacks take today's defaults) and `now`. `origin` names `saved` in
// a parse error.
ConfigDiff diff_configs(const std::string& saved, const std::string& origin, const config::Config& now);
// Layout, logging, evaluation cadence, checkpoint cadence, stop handling, run.dir, debug.
bool safe_to_change(const std::string& key);
// [model] and [moe] but its loss and routing weights: refused first, naming the manifest.
bool fixed_by_checkpoint(const std::string& key);
// Throws InputError for a change of the model, else for the first change that is neither safe
// nor allowed, naming the key, both values and `checkpoint`; `saved_step` explains what a new
// train.steps or optim.decay_steps does to the schedule. Those two may change freely while the
// decay ends where it did (optim.decay_steps, or train.steps when that is 0), or under
// "constant": every learning rate stays what it was.
// An allowed name that is no key of either config is refused too (a typo would allow nothing).
// Returns every change (safe ones included), for the run's log.
// `model_note(key)` adds to the refusal of a model key (what an older checkpoint meant by it).
std::vector<ConfigChange> check_changes(const ConfigDiff& diff, const std::set<std::string>& allowed,
                                        const std::string& checkpoint, const config::Config& now,
                                        int64_t saved_step,
                                        const std::function<std::string(const std::string&)>& model_note = {});

}  // namespace moe::run
