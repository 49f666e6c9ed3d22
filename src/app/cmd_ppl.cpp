// longctx ppl: perplexity over a text file, computed like llama.cpp's perplexity tool.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "engine/perplexity.h"

namespace lc::app {

void register_ppl(CLI::App& root) {
  struct Opts {
    ModelOptions mo;
    std::string file;
    int64_t ctx = 512;
    int64_t chunks = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "ppl", "perplexity of a text: non-overlapping windows of --ctx tokens, second half scored");
  o->mo.add_to(*cmd);
  cmd->add_option("-f,--file", o->file, "text file")->required();
  cmd->add_option("-c,--ctx,--ctx-size", o->ctx, "window length in tokens")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "evaluate at most this many windows (0 = all)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    const std::string text = read_file(o->file);
    Loaded l = load_model(o->mo);
    warn_context(l, o->ctx);
    Session s(l.model, l.session);
    const std::vector<int32_t> toks = l.model->tokenizer().encode(text, true);
    std::unique_ptr<Progress> prog;
    PplOptions po;
    po.ctx = o->ctx;
    po.max_windows = o->chunks;
    po.progress = [&](int64_t done, int64_t total, double tps) {
      if (!prog) prog = std::make_unique<Progress>("ppl", total, "windows");
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f tok/s", tps);
      prog->update(done, buf);
    };
    const PplResult r = perplexity(s, toks, po);
    if (prog) prog->finish();
    if (o->json) {
      nlohmann::json j;
      j["ppl"] = r.ppl;
      j["stderr"] = r.stderr_ppl;
      j["windows"] = r.windows;
      j["tokens_scored"] = r.tokens_scored;
      j["tokens_per_s"] = r.tokens_per_s;
      j["ctx"] = o->ctx;
      j["n_tokens"] = toks.size();
      j["rope"] = rope_summary(l.session.rope);
      j["memory"] = describe_memory(l.session.memory);
      std::cout << j.dump() << "\n";
      return;
    }
    std::printf(
        "ppl = %.4f +/- %.5f  (%lld windows of %lld tokens, %lld tokens scored, %.0f tok/s)\n",
        r.ppl, r.stderr_ppl, static_cast<long long>(r.windows), static_cast<long long>(o->ctx),
        static_cast<long long>(r.tokens_scored), r.tokens_per_s);
  });
}

}  // namespace lc::app
