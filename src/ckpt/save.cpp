// Saving: each rank collects records of what it owns (views of host tensors), writes and fsyncs
// its shard into step_N.tmp/, the shards' sizes, checksums and indexes are gathered to rank 0,
// which writes the manifest, renames the directory into place, moves `latest` and prunes.
#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "comm/agree.h"
#include "src/ckpt/checkpoint.h"
#include "src/ckpt/checksum.h"
#include "src/ckpt/directory.h"
#include "src/ckpt/shard_io.h"
#include "src/core/launcher.h"

namespace fs = std::filesystem;

namespace moe::ckpt {
namespace {

// The block of the l-th MoE layer (moe.stride: not l itself when dense blocks come between).
int64_t bias_block(const TrainState& st, size_t l) {
  return st.config ? config::moe_block(st.config->moe, int64_t(l)) : int64_t(l);
}

// A tensor's host copy (the tensor itself on the CPU).
Tensor on_host(const Tensor& t) { return t.device() == Device::CPU ? t : t.to(Device::CPU); }

// Optimizer state kinds and the flat buffers holding them.
std::vector<std::pair<std::string, Tensor>> state_slots(optim::Optimizer& opt,
                                                        const config::Config& cfg, bool expert) {
  optim::SlotState& s = opt.state(expert);
  if (cfg.optim.name == "adamw") return {{"adam_m", on_host(s.m)}, {"adam_v", on_host(s.v)}};
  return {{"momentum", on_host(s.m)}};
}

// This rank's records. `hold` keeps the host tensors the records point into alive.
std::vector<Record> collect(const TrainState& st, comm::ParallelContext& ctx,
                            std::vector<Tensor>& hold) {
  optim::ParamStore& ps = *st.params;
  MOE_CHECK(ps.dtype() == DType::F32, "checkpoints hold f32 parameters, this model is ",
            dtype_name(ps.dtype()));
  const bool rank0 = ctx.world->rank() == 0, expert_writer = ctx.dp_rank == 0;
  std::vector<Record> out;
  auto add = [&](const std::string& kind, const std::string& name, int64_t expert, int64_t begin,
                 int64_t end, const Tensor& buf, int64_t at) {
    Record r;
    r.key = {kind, name, expert, begin, end};
    r.view = buf.data<float>() + at;
    out.push_back(std::move(r));
  };
  Tensor dense = on_host(ps.values(false)), experts = on_host(ps.values(true));
  hold.insert(hold.end(), {dense, experts});
  std::vector<std::pair<std::string, Tensor>> dstate, estate;
  if (st.optimizer) {
    dstate = state_slots(*st.optimizer, *st.config, false);
    estate = state_slots(*st.optimizer, *st.config, true);
    for (auto& s : dstate) hold.push_back(s.second);
    for (auto& s : estate) hold.push_back(s.second);
  }
  const int64_t sb = st.optimizer ? st.optimizer->shard_begin() : 0;
  const int64_t se = st.optimizer ? st.optimizer->shard_end() : 0;
  const bool zero1 = st.optimizer && st.optimizer->zero1();
  for (const optim::Param& p : ps.params()) {
    const int64_t n = p.numel();
    if (!p.expert) {
      if (rank0) add("value", p.name, -1, 0, n, dense, p.offset);
      // Dense state lives at (flat index - shard_begin): the shard with ZeRO-1, all of it without.
      const int64_t a = std::max(sb, p.offset), b = std::min(se, p.offset + n);
      if ((zero1 || rank0) && a < b)
        for (auto& [kind, buf] : dstate)
          add(kind, p.name, -1, a - p.offset, b - p.offset, buf, a - sb);
      continue;
    }
    if (!expert_writer) continue;
    const int64_t per = n / p.shape[0];
    for (int64_t u = 0; u < p.shape[0]; ++u) {
      const int64_t g = p.expert_offset + u, at = p.offset + u * per;
      add("value", p.name, g, 0, per, experts, at);
      for (auto& [kind, buf] : estate) add(kind, p.name, g, 0, per, buf, at);
    }
  }
  if (rank0) {
    for (size_t l = 0; l < st.expert_bias.size(); ++l) {
      Tensor b = on_host(st.expert_bias[l]);
      MOE_CHECK(b.dtype() == DType::F32, "expert bias must be f32");
      hold.push_back(b);
      add("expert_bias", expert_bias_name(bias_block(st, l)), -1, 0, b.numel(), b, 0);
    }
  }
  return out;
}

// Every rank's text to `root` (collective): lengths by all_gather, bytes by all_to_all_v in
// 64-bit words (the interface has no byte type).
std::vector<std::string> gather_text(comm::Communicator& c, const std::string& mine, int root) {
  const int P = c.size();
  int64_t len = int64_t(mine.size());
  std::vector<int64_t> lens(P);
  c.all_gather(&len, lens.data(), 1, DType::I64);
  auto words = [](int64_t n) { return (n + 7) / 8; };
  std::vector<int64_t> send(size_t(words(len)) + 1, 0);
  std::memcpy(send.data(), mine.data(), mine.size());
  std::vector<int64_t> sc(P, 0), rc(P, 0);
  sc[root] = words(len);
  if (c.rank() == root)
    for (int i = 0; i < P; ++i) rc[i] = words(lens[i]);
  std::vector<int64_t> sd = comm::displacements(sc), rd = comm::displacements(rc);
  std::vector<int64_t> recv(size_t(rd.back() + rc.back()) + 1, 0);
  c.all_to_all_v(send.data(), sc, sd, recv.data(), rc, rd, DType::I64);
  std::vector<std::string> out;
  if (c.rank() == root)
    for (int i = 0; i < P; ++i)
      out.emplace_back(reinterpret_cast<const char*>(recv.data() + rd[i]), size_t(lens[i]));
  return out;
}

// "file bytes checksum\n" then one "kind name expert begin end" line per record; "-" for none.
std::string describe(const std::string& file, const WrittenShard& w,
                     const std::vector<Record>& recs) {
  if (recs.empty()) return "-\n";
  std::ostringstream os;
  os << file << " " << w.bytes << " " << hex64(w.checksum) << "\n";
  for (const Record& r : recs)
    os << r.key.kind << " " << r.key.name << " " << r.key.expert << " " << r.key.begin << " "
       << r.key.end << "\n";
  return os.str();
}

bool parse_description(const std::string& text, int64_t rank, ShardInfo& s) {
  std::istringstream is(text);
  std::string checksum;
  if (text.rfind("-\n", 0) == 0) return false;
  is >> s.file >> s.bytes >> checksum;
  MOE_CHECK(parse_hex64(checksum, s.checksum), "bad shard description from rank ", rank);
  s.rank = rank;
  RecordKey k;
  while (is >> k.kind >> k.name >> k.expert >> k.begin >> k.end) s.records.push_back(k);
  return true;
}

Manifest make_manifest(const TrainState& st, comm::ParallelContext& ctx) {
  const config::Config& cfg = *st.config;
  Manifest m;
  m.step = st.step;
  m.optimizer_steps = st.optimizer_steps;
  m.run_id = st.run_id;
  m.segment = st.segment;
  m.config = config::to_toml(cfg);
  m.param_table = optim::format_table(*st.table, "csv");
  m.forward = forward_constants(cfg, *st.table);
  m.layout = {ctx.world->size(), ctx.ep_size, ctx.dp_size, st.optimizer && st.optimizer->zero1(),
              cfg.optim.name};
  m.experts = cfg.moe.experts;
  m.dense_count = st.params->count(false);
  for (const optim::Param& p : st.params->params()) {
    ParamInfo info;
    info.name = p.name;
    info.group = std::string(optim::group_name(p.group));
    info.shape = p.shape;
    info.expert = p.expert;
    if (p.expert)
      info.shape[0] = cfg.moe.experts;
    else
      info.offset = p.offset;
    m.params.push_back(std::move(info));
  }
  for (size_t l = 0; l < st.expert_bias.size(); ++l)
    m.bias_names.push_back(expert_bias_name(bias_block(st, l)));
  return m;
}

}  // namespace

std::string expert_bias_name(int64_t layer) {
  return "blocks." + std::to_string(layer) + ".moe.expert_bias";
}

std::string save(const TrainState& st, comm::ParallelContext& ctx, const std::string& run_dir,
                 int64_t keep) {
  comm::Communicator& w = *ctx.world;
  const bool rank0 = w.rank() == 0;
  const std::string root = run_dir + "/checkpoints", name = step_dir_name(st.step);
  const std::string final_dir = root + "/" + name, tmp = final_dir + ".tmp";

  // 1. An empty step_N.tmp (interrupted saves of earlier runs are swept away here).
  comm::run_agreed_rethrow(w, [&] {
    stop_if_launcher_gone();
    if (!rank0) return;
    fs::create_directories(root);
    remove_stale_tmp(root);
    fs::create_directory(tmp);
    fsync_dir(root);
  });
  // 2. Every rank writes and fsyncs its shard.
  std::string mine;
  comm::run_agreed_rethrow(w, [&] {
    stop_if_launcher_gone();
    std::vector<Tensor> hold;
    Shard shard;
    shard.rank = w.rank();
    shard.step = st.step;
    shard.records = collect(st, ctx, hold);
    WrittenShard ws;
    const std::string file = shard_file_name(w.rank());
    if (!shard.records.empty()) ws = write_shard(tmp + "/" + file, shard);
    mine = describe(file, ws, shard.records);
  });
  // 3. Sizes, checksums and indexes to rank 0.
  std::vector<std::string> all = gather_text(w, mine, 0);
  // 4. Rank 0: manifest, then the atomic rename that makes the checkpoint exist, then `latest`.
  comm::run_agreed_rethrow(w, [&] {
    if (!rank0) return;
    stop_if_launcher_gone();
    Manifest m = make_manifest(st, ctx);
    for (size_t r = 0; r < all.size(); ++r) {
      ShardInfo s;
      if (parse_description(all[r], int64_t(r), s)) m.shards.push_back(std::move(s));
    }
    write_file_durably(tmp + "/manifest.toml", manifest_to_toml(m));
    fsync_dir(tmp);
    if (fs::exists(final_dir)) {
      // Saving the same step again (a resumed run): swap the directories in one atomic step
      // where the file system can, so step_N never goes missing; the old one leaves as .tmp.
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0) {
        fs::remove_all(tmp);
      } else {
        const std::string old = final_dir + ".replaced.tmp";
        fs::remove_all(old);
        fs::rename(final_dir, old);
        fs::rename(tmp, final_dir);
      }
    } else {
      fs::rename(tmp, final_dir);
    }
    fsync_dir(root);
    replace_latest(root, name);
    prune_checkpoints(root, keep, name);
  });
  return final_dir;
}

}  // namespace moe::ckpt
