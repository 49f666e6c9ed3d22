// Helpers of the tests that drive InfLLM sessions of stories260K token by token: a reproducible
// token sequence, and the session's block memory.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/session.h"
#include "engine/session_spec.h"
#include "memory/context_memory.h"
#include "model/model.h"

namespace lc::test {

// Small windows and blocks (stories260K read as trained on 512 tokens): a few hundred tokens form
// sinks and dozens of blocks. Topk 3; no memory budget (callers set one to spill).
inline SessionSpec small_block_spec(MemoryPolicy policy) {
  SessionSpec spec;
  spec.memory.policy = policy;
  spec.ctx_train = 512;
  spec.batch = 16;
  spec.memory.n_init = 4;
  spec.memory.n_local = 48;
  spec.memory.exec_block = 16;
  spec.memory.block_size = 8;
  spec.memory.topk = 3;
  spec.memory.repr_topk = 2;
  return spec;
}

// n tokens: BOS, then a sequence that depends on salt (never special tokens).
inline std::vector<int32_t> text_tokens(const Model& m, int n, int salt) {
  std::vector<int32_t> t{m.tokenizer().bos()};
  for (int i = 1; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 37 + salt * 11) % 450));
  return t;
}

inline const ContextMemory& context_memory(const Session& s) {
  return dynamic_cast<const ContextMemory&>(s.memory());
}

}  // namespace lc::test
