// Typed session settings, as front ends fill them, and their resolution against a loaded model.
//
// A front end (the CLI, the server, an evaluation) fills a SessionSpec: every field is optional,
// an unset one takes its default, most of them derived from the model's trained context. One
// function, resolve_session(), turns (model, spec) into fully resolved, validated SessionOptions
// or an lc::Error that names the setting ("memory.n_local = 900 is larger than the trained
// context 512 ..."). Setting names are the library's: memory.*, rope.*, ctx_train, batch, threads.
// RoPE precedence: the spec's rope overrides > config.json (rope.hf_config) > GGUF metadata.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/memory_config.h"
#include "model/model.h"
#include "model/rope/rope_config.h"

namespace lc {

// The KV memory's settings; names in the comments.
struct MemorySpec {
  std::optional<MemoryPolicy> policy;          // memory.policy (default full)
  std::optional<KvType> kv_type;               // memory.kv_type (default_kv_type: full f16)
  std::optional<int64_t> max_ctx;              // memory.max_ctx: tokens a full memory may hold
  std::optional<int64_t> n_init;               // memory.n_init: attention sinks
  std::optional<int64_t> n_local;              // memory.n_local: local window
  std::optional<int64_t> block_size;           // memory.block_size (infllm)
  std::optional<int64_t> topk;                 // memory.topk: blocks retrieved per step (infllm)
  std::optional<int64_t> repr_topk;            // memory.repr_topk: representatives per block
  std::optional<int64_t> exec_block;           // memory.exec_block: query tokens per attention step
  std::optional<size_t> mem_budget;            // memory.mem_budget: bytes of blocks in RAM
  std::optional<std::string> spill_dir;        // memory.spill_dir
  std::optional<SpillType> spill_type;         // memory.spill_type (default f16)
  std::optional<bool> exact_retrieval;         // memory.retrieval: exact (true) or index
  std::optional<int64_t> index_group;          // memory.index_group (default 32)
  std::optional<int64_t> index_probe;          // memory.index_probe (default 0 = no cap)
  std::optional<int64_t> index_budget;         // memory.index_budget (default 2048)
  std::optional<int64_t> index_clusters;       // memory.index_clusters (default 1024)
  std::optional<bool> measure_recall;          // memory.measure_recall
  std::optional<HeadScore> head_score;         // memory.head_score (default max)
  std::optional<int64_t> neighbors;            // memory.neighbors
  std::optional<int64_t> retrieval_interval;   // memory.retrieval_interval (infllm)
  std::optional<std::string> trace_retrieval;  // memory.trace_retrieval: JSON-lines file
};

struct SessionSpec {
  MemorySpec memory;
  RopeOverrides rope;                    // rope.*
  std::optional<std::string> hf_config;  // rope.hf_config: a config.json applied over the GGUF
  std::optional<int64_t> ctx_train;      // ctx_train: the trained context when the file's is wrong
  std::optional<int64_t> batch;          // batch: prompt tokens per forward step (default 512)
  std::optional<int> threads;            // threads: 0 = all cores (process-wide)
  // Where a front end got each setting it filled (e.g. "memory.n_local" -> the flag or request
  // field); shown as the setting's source. Filled settings without an entry show "set".
  std::map<std::string, std::string> origin;

  // Records `setting`'s origin for every RoPE or memory setting (the rope part is mirrored into
  // rope.origin so that RoPE parameters report it too).
  void set_origin(const std::string& setting, const std::string& where);
};

// A warning about settings: the message and the names of the settings it is about.
struct SettingWarning {
  std::string message;
  std::vector<std::string> settings;
};

// One resolved setting: its value as text and where it came from.
struct SettingValue {
  std::string value, source;
};

// Fully resolved settings of a session.
struct SessionOptions {
  RopeSettings rope;        // RoPE in effect (usually the model's, possibly overridden)
  MemoryConfig memory;      // KV memory policy and its parameters
  int64_t batch = 512;      // prompt tokens per forward step (chunked prefill)
  int64_t trained_ctx = 0;  // the trained context the defaults came from (0 = unknown)
  int threads = 0;          // threads of the process-wide pool (0 = leave it as it is)
  // Every setting resolve_session() decided, with its source (for verbose output).
  std::map<std::string, SettingValue> settings;
  // Things worth telling the user that are no error (e.g. a memory budget too small to hold
  // one decoding step, a window longer than the trained context), with the settings they are about.
  std::vector<SettingWarning> warnings;
};

// Resolves the spec against the model: defaults from the trained context (ctx_train, else the
// RoPE original context, else the file's context_length), RoPE from GGUF / config.json /
// overrides, every value validated. lc::Error naming the setting otherwise.
SessionOptions resolve_session(const Model& model, const SessionSpec& spec);

// The trained context a spec resolves to for this model.
int64_t resolve_trained_context(const Model& model, const SessionSpec& spec,
                                const RopeSettings& rope);

// Applies the resolved thread count to the process-wide pool (0: unchanged).
void apply_threads(const SessionOptions& o);

// The resolved settings, one "name = value (source)" line each, in a stable order.
std::vector<std::string> describe_settings(const SessionOptions& o);

}  // namespace lc
