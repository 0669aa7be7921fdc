// Checkpoints: save the training state of every rank into one directory, and load it back at
// the same or another parallel layout (EP size, world size, ZeRO-1 on or off).
//
// Who writes what, so that nothing is stored twice: dense values and expert biases by world
// rank 0; expert values and expert optimizer state by the ranks with dp_rank 0 (each its local
// experts, one record per global expert); dense optimizer state by rank 0, or with ZeRO-1 by
// every rank for its own range of the flat dense buffer. Ranks with nothing to store write no
// file. Every rank must see the run directory (a shared file system across nodes): ranks write
// their own shards and read other ranks' shards when the layout changes. Layout of the directory
// and crash safety: src/ckpt/directory.h; the manifest: src/ckpt/manifest.h; the records:
// src/ckpt/record.h.
#pragma once
#include <string>
#include <vector>

#include "comm/parallel_context.h"
#include "src/ckpt/manifest.h"
#include "src/config/config.h"
#include "src/optim/optimizer.h"
#include "src/optim/parameterization.h"
#include "src/optim/params.h"

namespace moe::ckpt {

// What one rank saves and restores: views of the live model (tensors share storage).
struct TrainState {
  const config::Config* config = nullptr;
  const optim::ParamTable* table = nullptr;
  optim::ParamStore* params = nullptr;
  optim::Optimizer* optimizer = nullptr;  // null: weights only (eval, export)
  std::vector<Tensor> expert_bias;        // (M) per MoE layer, in block order
  int64_t step = 0;                       // optimizer steps done = data cursor
  int64_t optimizer_steps = 0;            // Optimizer::steps_taken
  std::string run_id;                     // the run's identity (src/run/identity.h), for the manifest
  int64_t segment = 1;
};

// The name of the expert-bias tensor of the MoE layer in block `layer`.
std::string expert_bias_name(int64_t layer);

// Saves into <run_dir>/checkpoints/step_NNNNNNNN (see directory.h for the protocol), points
// `latest` at it and keeps the newest `keep`. Collective over ctx.world; an error on any rank
// throws the same moe::Error on every rank. Returns the checkpoint directory.
std::string save(const TrainState& st, comm::ParallelContext& ctx, const std::string& run_dir,
                 int64_t keep);

struct LoadInfo {
  std::string dir;  // the checkpoint directory that was read
  int64_t step = 0, optimizer_steps = 0;
  Manifest manifest;
};

// Loads a checkpoint (or a run directory's latest) into st: values and expert biases, plus the
// optimizer state and step count when st.optimizer is set. The model shape and parameterization
// must match the manifest's; the layout may differ. Nothing is changed unless every rank read
// everything it needs. Collective over ctx.world; any error (missing, truncated or corrupt shard,
// different model, bad manifest) throws the same InputError, naming the file, on every rank.
LoadInfo load(const std::string& path, TrainState& st, comm::ParallelContext& ctx);

// Reads the manifest of a checkpoint or run directory without loading tensors (for eval and
// export, which take the config from it). Returns the checkpoint directory in `dir`.
Manifest peek_manifest(const std::string& path, std::string& dir);

}  // namespace moe::ckpt
