// Text generation in one call: a loop over Generation (generation.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/generation.h"

namespace lc {

// Runs the prompt through the session (appending to what it holds) and generates. on_text receives
// the text as it becomes safe to show (whole UTF-8 characters, stop strings held back).
// on_prefill(done, total) reports prompt progress after each prefill chunk.
GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text = {},
                        const std::function<void(int64_t, int64_t)>& on_prefill = {});

}  // namespace lc
