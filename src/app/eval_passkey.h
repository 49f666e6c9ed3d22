// longctx eval passkey: passkey retrieval accuracy over a grid of prompt lengths (in the model's
// tokens) and needle depths, for any model / RoPE / KV-memory configuration; resumable.
#pragma once

#include <CLI/CLI.hpp>

namespace lc::app {

// Registers `passkey` under the `eval` group.
void register_eval_passkey(CLI::App& eval);

}  // namespace lc::app
