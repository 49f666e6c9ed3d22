// KV-memory policy selection and the defaults derived from a model's trained context.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kernels/kv_type.h"
#include "memory/context_memory.h"
#include "memory/kv_memory.h"

namespace lc {

enum class MemoryPolicy : uint8_t { Full, Streaming, InfLLM };

const char* memory_policy_name(MemoryPolicy p);  // "full", "streaming", "infllm"
// nullopt for anything but the three names above.
std::optional<MemoryPolicy> memory_policy_from_name(std::string_view name);
// lc::Error naming the setting memory.policy for an unknown name.
MemoryPolicy parse_memory_policy(const std::string& name);

struct MemoryConfig {
  MemoryPolicy policy = MemoryPolicy::Full;
  int64_t max_ctx = 0;  // full: most tokens it may hold (0 = unlimited)
  // full: storage of keys and values (streaming / infllm: f32 only). resolve_session() sets it
  // to default_kv_type(policy) when the spec leaves it unset; this member default is f32.
  KvType kv_type = KvType::F32;
  ContextMemoryOptions ctx;  // streaming / infllm
  std::string trace_path;    // memory.trace_retrieval: the retrieval trace file ("" = none)
};

// The KV type a session gets when memory.kv_type is not set: f16 for the full memory (half the
// bytes of f32 and the same greedy text and perplexity to 0.01% in our checks, docs/speed.md;
// llama.cpp's default too), f32 for streaming / infllm (the only type they store).
KvType default_kv_type(MemoryPolicy p);

// Defaults from the trained context L (docs/algorithms.md 1.5): the reference configuration for
// L >= 8192; otherwise n_local = L/2, n_init = min(128, L/16), block = clamp(L/32, 16, 128),
// topk filling what is left of L, exec_block = min(512, L - n_local).
ContextMemoryOptions default_context_memory(int64_t trained_ctx);

// One line describing the policy and its parameters, e.g. for verbose output; the full memory's
// names its KV type ("full (f16 KV)").
std::string describe_memory(const MemoryConfig& c);

// Parses "512M", "2G", "100000" (bytes); lc::Error naming `setting` on a bad value.
size_t parse_bytes(const std::string& text, const std::string& setting);

// lc::Error for a kv_type other than F32 with streaming / infllm.
std::unique_ptr<KvMemory> make_memory(const MemoryDims& dims, const MemoryConfig& c);

// lc::Error when the policy does not support c.kv_type (streaming / infllm store f32 only).
void check_kv_type(const MemoryConfig& c);

}  // namespace lc
