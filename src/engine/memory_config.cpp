#include "engine/memory_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "memory/full_memory.h"

namespace lc {

const char* memory_policy_name(MemoryPolicy p) {
  switch (p) {
    case MemoryPolicy::Full:
      return "full";
    case MemoryPolicy::Streaming:
      return "streaming";
    case MemoryPolicy::InfLLM:
      return "infllm";
  }
  return "?";
}

std::optional<MemoryPolicy> memory_policy_from_name(std::string_view name) {
  for (MemoryPolicy p : {MemoryPolicy::Full, MemoryPolicy::Streaming, MemoryPolicy::InfLLM})
    if (name == memory_policy_name(p)) return p;
  return std::nullopt;
}

MemoryPolicy parse_memory_policy(const std::string& name) {
  if (auto p = memory_policy_from_name(name)) return *p;
  fail_setting({"memory.policy"}, "memory.policy '", name,
               "' is unknown (expected: full, streaming, infllm)");
}

ContextMemoryOptions default_context_memory(int64_t L) {
  ContextMemoryOptions o;
  if (L <= 0) L = 4096;
  if (L >= 8192) return o;  // n_init 128, n_local 4096, block 128, topk 16, repr 4, exec 512
  o.n_local = std::max<int64_t>(1, L / 2);
  o.n_init = std::min<int64_t>(128, L / 16);
  // Small blocks retrieve more precisely (passkey-llama-tiny at 2K tokens: 93% with 16-token
  // blocks against 75% with 32), and the retrieved blocks fill what the window and sinks leave.
  o.block_size = std::clamp<int64_t>(L / 32, 16, 128);
  o.topk = std::max<int64_t>(1, (L - o.n_local - o.n_init) / o.block_size);
  o.repr_topk = std::min<int64_t>(4, o.block_size);
  o.exec_block = std::max<int64_t>(1, std::min<int64_t>(512, L - o.n_local));
  return o;
}

std::string describe_memory(const MemoryConfig& c) {
  if (c.policy == MemoryPolicy::Full) {
    const std::string kv = cat(kv_type_name(c.kv_type), " KV");
    if (c.max_ctx <= 0) return cat("full (", kv, ")");
    return cat("full (", kv, ", up to ", c.max_ctx, " tokens)");
  }
  const ContextMemoryOptions& o = c.ctx;
  std::string s = cat(memory_policy_name(c.policy), ": n_init ", o.n_init, ", n_local ", o.n_local,
                      ", exec_block ", o.exec_block);
  if (c.policy == MemoryPolicy::InfLLM) {
    s += cat(", block_size ", o.block_size, ", topk ", o.topk, ", repr_topk ", o.repr_topk,
             ", retrieval ",
             o.exact_retrieval    ? std::string("exact")
             : o.index_budget > 0 ? cat("index (", o.index_budget, " blocks scored at most)")
                                  : std::string("index (exact bound search)"));
    s += o.store.mem_budget ? cat(", mem budget ", o.store.mem_budget >> 20, " MiB, spill ",
                                  spill_type_name(o.store.spill_type), " in ",
                                  o.store.spill_dir.empty() ? "$TMPDIR" : o.store.spill_dir)
                            : std::string(", blocks in RAM (no memory budget)");
  }
  return s;
}

size_t parse_bytes(const std::string& text, const std::string& setting) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  double v = 0;
  try {
    v = std::stod(text.substr(0, i));
  } catch (...) {
    fail_setting({setting}, setting, " '", text,
                 "' is not a size (expected e.g. 512M, 2G, or bytes)");
  }
  std::string unit = text.substr(i);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double mul = 1;
  if (unit == "" || unit == "B")
    mul = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mul = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mul = 1024.0 * 1024 * 1024;
  else
    fail_setting({setting}, setting, " '", text, "' has an unknown unit (expected K, M or G)");
  if (!(v >= 0) || v * mul > 1e18)
    fail_setting({setting}, setting, " '", text, "' is out of range");
  return static_cast<size_t>(std::llround(v * mul));
}

KvType default_kv_type(MemoryPolicy p) {
  return p == MemoryPolicy::Full ? KvType::F16 : KvType::F32;
}

void check_kv_type(const MemoryConfig& c) {
  if (c.kv_type != KvType::F32 && c.policy != MemoryPolicy::Full)
    fail_setting({"memory.kv_type", "memory.policy"}, "memory.kv_type ", kv_type_name(c.kv_type),
                 " applies to memory.policy full only; memory.policy ",
                 memory_policy_name(c.policy),
                 " stores its keys and values as f32 (leave memory.kv_type at f32; "
                 "memory.spill_type sets the type of spilled infllm blocks)");
}

std::unique_ptr<KvMemory> make_memory(const MemoryDims& dims, const MemoryConfig& c) {
  check_kv_type(c);
  if (c.policy == MemoryPolicy::Full)
    return std::make_unique<FullMemory>(dims, c.max_ctx, c.kv_type);
  ContextMemoryOptions o = c.ctx;
  o.infllm = c.policy == MemoryPolicy::InfLLM;
  return std::make_unique<ContextMemory>(dims, o);
}

}  // namespace lc
