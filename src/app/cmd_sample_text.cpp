// longctx sample-text: a long, reproducible text sampled from a model (e.g. TinyStories-style
// stories from stories260K), for perplexity and long-context evaluations.
#include <fstream>
#include <iostream>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "engine/sampler.h"

namespace lc::app {

void register_sample_text(CLI::App& root) {
  struct Opts {
    ModelOptions mo;
    std::string out;
    int64_t tokens = 100000;
    int64_t max_doc = 0;
    uint64_t seed = 1;
    float temp = 1.0f;
    std::string prompt;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "sample-text",
      "write a reproducible text of many documents sampled from the model (BOS to EOS each)");
  o->mo.add_to(*cmd);
  cmd->add_option("-o,--output", o->out, "output text file")->required();
  cmd->add_option("--tokens", o->tokens, "stop once this many tokens are written")
      ->capture_default_str();
  cmd->add_option("--max-doc", o->max_doc,
                  "longest document in tokens (default: the model's context length)");
  cmd->add_option("-s,--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--temp", o->temp, "sampling temperature")->capture_default_str();
  cmd->add_option("-p,--prompt", o->prompt, "text every document starts with");
  cmd->callback([o] {
    if (o->tokens <= 0) fail("--tokens must be positive, got ", o->tokens);
    Loaded l = load_model(o->mo);
    const Model& m = *l.model;
    const Tokenizer& tok = m.tokenizer();
    const int64_t max_doc = o->max_doc > 0                ? o->max_doc
                            : m.hparams().n_ctx_train > 0 ? m.hparams().n_ctx_train
                                                          : 512;
    std::ofstream out(o->out, std::ios::binary);
    if (!out) fail("cannot write '", o->out, "'");
    Session s(l.model, l.session);
    SamplerParams sp;
    sp.temperature = o->temp;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = o->seed;
    validate(sp);
    Sampler sampler(sp, m.hparams().n_vocab);
    const std::vector<int32_t> start = tok.encode(o->prompt, true);
    if (start.empty()) fail("the model adds no BOS token; give a --prompt to start documents");
    Progress prog("sample-text", o->tokens, "tokens");
    int64_t written = 0, docs = 0;
    while (written < o->tokens) {
      s.reset();
      sampler.reset();
      std::string doc = o->prompt;
      const std::vector<float>* logits = &s.eval(start);
      int64_t n = static_cast<int64_t>(start.size());
      StreamDecoder dec(tok);
      while (n < max_doc) {
        const int32_t id = sampler.sample(logits->data());
        sampler.accept(id);
        // End of document: an end-of-generation token, or BOS (llama2.c-style models such as
        // stories260K separate stories with BOS).
        if (tok.is_eog(id) || id == tok.bos()) break;
        doc += dec.push(id);
        ++n;
        logits = &s.eval(&id, 1);
      }
      doc += dec.finish();
      out << doc << "\n";
      written += n;
      ++docs;
      prog.update(std::min(written, o->tokens));
    }
    prog.finish();
    if (!out.flush()) fail("error writing '", o->out, "' (disk full?)");
    std::cerr << "wrote " << docs << " documents, about " << written << " tokens, to " << o->out
              << "\n";
  });
}

}  // namespace lc::app
