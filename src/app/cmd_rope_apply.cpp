// longctx rope-apply: a factors file (FACTORS.json) written into a GGUF in llama.cpp's LongRoPE
// form, or printed as a Hugging Face config.json rope_scaling entry.
#include <fstream>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "eval/longrope_factors.h"

namespace lc::app {

void register_rope_apply(CLI::App& root) {
  struct Opts {
    std::string model, factors, out, hf_out;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "rope-apply",
      "write LongRoPE factors (FACTORS.json) into a GGUF (rope_factors_long / rope_factors_short "
      "tensors, rope.scaling.* keys as llama.cpp reads them) and/or a config.json rope_scaling");
  cmd->add_option("-m,--model", o->model, "input GGUF model");
  cmd->add_option("--factors", o->factors, "factors file written by rope-search")->required();
  cmd->add_option("-o,--output", o->out, "GGUF to write");
  cmd->add_option("--hf-config-out", o->hf_out,
                  "write the Hugging Face config.json entries (rope_scaling, "
                  "max_position_embeddings) to this file ('-' = standard output)");
  cmd->callback([o] {
    if (o->out.empty() && o->hf_out.empty())
      fail("nothing to write: give -o OUT.gguf (with -m IN.gguf) and/or --hf-config-out FILE");
    const eval::LongRopeFactors f = eval::read_longrope_factors(o->factors);
    if (!o->out.empty()) {
      if (o->model.empty()) fail("-o writes a copy of a model: give -m IN.gguf");
      eval::write_longrope_gguf(o->model, f, o->out);
      std::cerr << "wrote " << o->out << ": longrope, " << f.long_factors.size()
                << " factors per list, attention factor " << f.attn_factor << ", original context "
                << f.orig_ctx << ", context " << f.target;
      if (f.short_attn_factor)
        std::cerr << ", short-list attention factor " << *f.short_attn_factor
                  << " (longctx.rope.scaling.short_attn_factor; llama.cpp applies " << f.attn_factor
                  << " with both lists)";
      if (f.n_hat > 0)
        std::cerr << ", n_hat " << f.n_hat
                  << " (longctx.rope.scaling.n_hat; llama.cpp has no such setting)";
      std::cerr << "\n";
    }
    if (!o->hf_out.empty()) {
      const std::string text = eval::longrope_hf_config(f).dump(2);
      if (o->hf_out == "-") {
        std::cout << text << "\n";
      } else {
        std::ofstream out(o->hf_out);
        if (!out || !(out << text << "\n")) fail("cannot write ", o->hf_out);
      }
    }
  });
}

}  // namespace lc::app
