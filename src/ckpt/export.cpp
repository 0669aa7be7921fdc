// Export: rebuild the model at EP = 1 from the manifest's config, load the weights through the
// ordinary (resharding) loader, then write every parameter and expert bias.
#include "src/ckpt/export.h"

#include "models/transformer.h"
#include "src/ckpt/checkpoint.h"
#include "src/ckpt/safetensors.h"
#include "src/core/output_file.h"

namespace moe::ckpt {

ExportInfo export_safetensors(const std::string& checkpoint, const std::string& out,
                              std::unique_ptr<comm::Communicator> one_rank, ops::Backend& backend) {
  MOE_CHECK(one_rank && one_rank->size() == 1, "export runs on one rank");
  check_output_path(out);  // before the checkpoint is read: a bad --out fails at once
  ExportInfo info;
  Manifest m = peek_manifest(checkpoint, info.dir);
  const std::string mpath = info.dir + "/manifest.toml";
  // The saved layout does not matter: one rank holds every expert.
  config::Config cfg =
      config::parse_config(m.config, mpath, {"parallel.ep=1", "parallel.zero1=false"}, 1);
  cfg.parallel.device = backend.device() == Device::CPU ? "cpu" : "cuda";
  comm::ParallelContext ctx = comm::make_parallel_context(std::move(one_rank), 1, &backend);
  optim::ParamTable table = optim::make_param_table(cfg);
  models::Transformer model(cfg, table, ctx, DType::F32);
  TrainState st;
  st.config = &cfg;
  st.table = &table;
  st.params = &model.params();
  for (models::MoeLayer* l : model.moe_layers()) st.expert_bias.push_back(l->bias());
  LoadInfo li = load(info.dir, st, ctx);
  info.step = li.step;

  std::vector<Tensor> host;
  std::vector<NamedTensor> tensors;
  for (const optim::Param& p : model.params().params()) {
    host.push_back(p.value.to(Device::CPU));
    tensors.push_back({p.name, p.shape, host.back().data<float>()});
  }
  for (size_t l = 0; l < st.expert_bias.size(); ++l) {
    host.push_back(st.expert_bias[l].to(Device::CPU));
    tensors.push_back({m.bias_names[l], {cfg.moe.experts}, host.back().data<float>()});
  }
  std::map<std::string, std::string> meta = {
      {"format", "pt"},  // what PyTorch loaders expect
      {"step", std::to_string(li.step)},
      {"config", m.config},
      {"param_table", m.param_table},
      {"forward", forward_constants_json(forward_constants(cfg, table))}};
  info.tensors = int64_t(tensors.size());
  info.bytes = write_safetensors(out, tensors, meta);
  return info;
}

}  // namespace moe::ckpt
