// Helpers of the tests that drive InfLLM sessions of stories260K token by token: a reproducible
// token sequence, and the session's block memory.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/session.h"
#include "memory/context_memory.h"
#include "model/model.h"

namespace lc::test {

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
