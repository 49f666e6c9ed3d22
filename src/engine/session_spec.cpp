#include "engine/session_spec.h"

#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/arch/arch.h"

namespace lc {

namespace {
// Best blocks whose adjacent blocks are attended too (docs/memory.md: measured).
constexpr int64_t kDefaultNeighbors = 0;
// Every decoding step searches: re-ranking the candidates of an earlier step's search instead
// (memory.retrieval_interval > 1) costs the same at any length, but a step whose query differs
// from the one that searched misses blocks outside them (passkey-llama-tiny at 256K tokens found
// 6 keys of 10 with 16 against 10 of 10; docs/memory.md).
constexpr int64_t kDefaultRetrievalInterval = 1;
}  // namespace

void SessionSpec::set_origin(const std::string& setting, const std::string& where) {
  origin[setting] = where;
  if (setting.rfind("rope.", 0) == 0) rope.origin[setting] = where;
}

int64_t resolve_trained_context(const Model& model, const SessionSpec& spec,
                                const RopeSettings& rope) {
  if (spec.ctx_train && *spec.ctx_train > 0) return *spec.ctx_train;
  if (rope.orig_ctx > 0) return rope.orig_ctx;
  return model.hparams().n_ctx_train;
}

namespace {

// Records settings with their sources while resolving.
class Recorder {
 public:
  Recorder(const SessionSpec& spec, SessionOptions& out) : spec_(spec), out_(out) {}

  // A value the spec may set: its own when set, else the default `def` with `why`.
  template <typename T>
  T pick(const std::string& name, const std::optional<T>& v, T def, const std::string& why) {
    if (v) {
      note(name, *v, set_source(name));
      return *v;
    }
    note(name, def, why);
    return def;
  }
  template <typename T>
  void note(const std::string& name, const T& v, const std::string& source) {
    if constexpr (std::is_same_v<T, bool>)
      out_.settings[name] = {v ? "true" : "false", source};
    else
      out_.settings[name] = {cat(v), source};
  }
  std::string set_source(const std::string& name) const {
    auto it = spec_.origin.find(name);
    return it != spec_.origin.end() ? it->second : "set";
  }

 private:
  const SessionSpec& spec_;
  SessionOptions& out_;
};

void check_min(const std::string& name, int64_t v, int64_t lo, const char* what) {
  if (v < lo) fail_setting({name}, name, " must be ", what, ", got ", v);
}

}  // namespace

SessionOptions resolve_session(const Model& model, const SessionSpec& spec) {
  SessionOptions o;
  Recorder rec(spec, o);
  const HParams& hp = model.hparams();

  if (spec.threads) check_min("threads", *spec.threads, 0, ">= 0");
  o.threads = rec.pick("threads", spec.threads, 0, "default: all cores");
  if (spec.batch) check_min("batch", *spec.batch, 1, "positive");
  o.batch = rec.pick<int64_t>("batch", spec.batch, 512, "default");
  if (spec.ctx_train) check_min("ctx_train", *spec.ctx_train, 1, "positive");

  // RoPE: GGUF < config.json < overrides.
  const ArchSpec* arch = find_arch(hp.arch);
  LC_CHECK(arch != nullptr);
  o.rope = rope_resolve(&model.gguf(), hp.arch, hp.head_dim, arch->rope_layout,
                        spec.hf_config.value_or(model.hf_config()), spec.rope);
  if (spec.hf_config)
    rec.note("rope.hf_config", *spec.hf_config, rec.set_source("rope.hf_config"));
  else if (!model.hf_config().empty())
    rec.note("rope.hf_config", model.hf_config(), "the model folder's config.json");

  o.trained_ctx = resolve_trained_context(model, spec, o.rope);
  const std::string from_trained = cat("default: trained context ", o.trained_ctx);
  if (spec.ctx_train)
    rec.note("ctx_train", o.trained_ctx, rec.set_source("ctx_train"));
  else
    rec.note("ctx_train", o.trained_ctx,
             o.rope.orig_ctx > 0 ? std::string("RoPE original context")
                                 : cat("gguf:", hp.arch, ".context_length"));

  // Memory.
  const MemorySpec& ms = spec.memory;
  MemoryConfig& mc = o.memory;
  mc.policy = ms.policy.value_or(MemoryPolicy::Full);
  rec.note("memory.policy", memory_policy_name(mc.policy),
           ms.policy ? rec.set_source("memory.policy") : "default");
  mc.kv_type = ms.kv_type.value_or(default_kv_type(mc.policy));
  rec.note("memory.kv_type", kv_type_name(mc.kv_type),
           ms.kv_type                        ? rec.set_source("memory.kv_type")
           : mc.policy == MemoryPolicy::Full ? "default of the full memory"
                                             : "default: streaming / infllm store f32");
  check_kv_type(mc);
  if (ms.max_ctx) check_min("memory.max_ctx", *ms.max_ctx, 0, ">= 0");
  mc.max_ctx = rec.pick<int64_t>("memory.max_ctx", ms.max_ctx, 0, "default: no limit");

  if (ms.index_probe) check_min("memory.index_probe", *ms.index_probe, 0, ">= 0");
  if (ms.index_budget) check_min("memory.index_budget", *ms.index_budget, 0, ">= 0");
  // Streaming and full memories ignore the block settings; only infllm reads them.
  ContextMemoryOptions& c = mc.ctx;
  const ContextMemoryOptions d = default_context_memory(o.trained_ctx);
  c = d;
  if (mc.policy != MemoryPolicy::Full) {
    c.n_init = rec.pick("memory.n_init", ms.n_init, d.n_init, from_trained);
    c.n_local = rec.pick("memory.n_local", ms.n_local, d.n_local, from_trained);
    // A window set smaller than the default query block also bounds the query block.
    int64_t exec = d.exec_block;
    std::string exec_why = from_trained;
    if (!ms.exec_block && exec > c.n_local) {
      exec = c.n_local;
      exec_why = "default: memory.n_local";
    }
    c.exec_block = rec.pick("memory.exec_block", ms.exec_block, exec, exec_why);
    c.infllm = mc.policy == MemoryPolicy::InfLLM;
    if (c.infllm) {
      c.block_size = rec.pick("memory.block_size", ms.block_size, d.block_size, from_trained);
      c.topk = rec.pick("memory.topk", ms.topk, d.topk, from_trained);
      c.repr_topk = rec.pick("memory.repr_topk", ms.repr_topk, d.repr_topk, from_trained);
      c.exact_retrieval = ms.exact_retrieval.value_or(false);
      rec.note("memory.retrieval", c.exact_retrieval ? "exact" : "index",
               ms.exact_retrieval ? rec.set_source("memory.retrieval") : "default");
      c.index_group = rec.pick<int64_t>("memory.index_group", ms.index_group, 32, "default");
      c.index_max_groups = rec.pick<int64_t>("memory.index_probe", ms.index_probe, 0, "default");
      c.index_budget = rec.pick<int64_t>("memory.index_budget", ms.index_budget, 2048, "default");
      c.index_clusters =
          rec.pick<int64_t>("memory.index_clusters", ms.index_clusters, 1024, "default");
      c.measure_recall = rec.pick("memory.measure_recall", ms.measure_recall, false, "default");
      c.head_score = ms.head_score.value_or(HeadScore::Max);
      rec.note("memory.head_score", head_score_name(c.head_score),
               ms.head_score ? rec.set_source("memory.head_score") : "default");
      c.neighbors =
          rec.pick<int64_t>("memory.neighbors", ms.neighbors, kDefaultNeighbors, "default");
      c.retrieval_interval = rec.pick<int64_t>("memory.retrieval_interval", ms.retrieval_interval,
                                               kDefaultRetrievalInterval, "default");
      mc.trace_path =
          rec.pick<std::string>("memory.trace_retrieval", ms.trace_retrieval, "", "default: none");
      // Bounded by default; 0, set explicitly, keeps every block in RAM.
      c.store.mem_budget = rec.pick<size_t>(
          "memory.mem_budget", ms.mem_budget, default_mem_budget(c, model.memory_dims()),
          "default: twice what a decoding step reads, at least 64 MiB; 0 = no limit");
      c.store.spill_dir =
          rec.pick<std::string>("memory.spill_dir", ms.spill_dir, "", "default: $TMPDIR");
      c.store.spill_type = ms.spill_type.value_or(SpillType::F16);
      rec.note("memory.spill_type", spill_type_name(c.store.spill_type),
               ms.spill_type ? rec.set_source("memory.spill_type") : "default");
    }
    validate_context_memory(c, o.trained_ctx);
    // Past the trained context (stretched by a RoPE scaling factor), window distances are ones the
    // model never saw: allowed, for experiments, but said.
    const double stretch = o.rope.method == RopeMethod::None ? 1.0 : std::max(1.0, o.rope.factor);
    const auto reach = static_cast<int64_t>(static_cast<double>(o.trained_ctx) * stretch);
    if (o.trained_ctx > 0 && c.n_local > reach)
      o.warnings.push_back(
          {cat("memory.n_local = ", c.n_local, " is larger than the trained context ", reach,
               ": the window shows the model distances it was never trained on (output degrades); "
               "use a window of at most ",
               reach,
               " (the default is half of the trained context), or set ctx_train if the "
               "trained context is wrong"),
           {"memory.n_local", "ctx_train"}});
    if (c.infllm) {
      MemoryDims dims = model.memory_dims();
      const std::string w = budget_warning(c, dims);
      if (!w.empty()) o.warnings.push_back({w, {"memory.mem_budget"}});
    }
  }
  return o;
}

void apply_threads(const SessionOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
}

std::vector<std::string> describe_settings(const SessionOptions& o) {
  std::vector<std::string> out;
  for (const auto& [name, v] : o.settings)
    out.push_back(cat(name, " = ", v.value.empty() ? "\"\"" : v.value, " (", v.source, ")"));
  return out;
}

}  // namespace lc
