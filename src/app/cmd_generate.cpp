// longctx generate: stream a continuation of a prompt.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "core/object_store.h"
#include "engine/generation.h"
#include "engine/session_state.h"
#include "model/tokenizer/chat_template.h"

namespace lc::app {

namespace {

struct GenOpts {
  ModelOptions mo;
  std::string prompt, file, system, chat_template, session;
  int64_t n_predict = 128;
  int64_t ctx = 0;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  int top_k = 40, repeat_last_n = 64;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool json = false, chat = false, ignore_eos = false, no_display_prompt = false,
       session_ro = false;
};

void run_generate(const GenOpts& o) {
  if (o.prompt.empty() == o.file.empty()) fail("give either -p TEXT or -f FILE");
  std::string text = o.file.empty() ? o.prompt : read_file(o.file);
  if (o.n_predict < 0) fail("-n must be >= 0, got ", o.n_predict);

  Loaded l = load_model(o.mo);
  const Tokenizer& tok = l.model->tokenizer();
  bool parse_special = false;
  if (o.chat || !o.chat_template.empty()) {
    const ChatFormat fmt = !o.chat_template.empty() ? chat_format_from_name(o.chat_template)
                           : tok.chat_template().empty()
                               ? throw Error(o.mo.model +
                                             ": the model has no tokenizer.chat_template; name "
                                             "one with --chat-template")
                               : detect_chat_format(tok.chat_template());
    std::vector<ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back({"system", o.system});
    msgs.push_back({"user", text});
    text = apply_chat_template(fmt, msgs, true);
    parse_special = true;
  }
  std::vector<int32_t> ids = tok.encode(text, true, parse_special);
  l.session.memory.max_ctx = o.ctx;  // the context limit (--ctx), checked below
  Session s(l.model, l.session);

  // --session FILE: continue the saved session. A prompt that starts with everything it holds
  // (the same text given again, as with llama.cpp's --prompt-cache) reads only the rest; any
  // other prompt is appended to it.
  std::unique_ptr<ObjectStore> store;
  if (o.session_ro && o.session.empty()) fail("--session-ro needs --session FILE");
  if (!o.session.empty()) {
    store = open_bundle_store(o.session);
    const auto t0 = std::chrono::steady_clock::now();
    if (load_session(s, *store, "session")) {
      std::fprintf(stderr, "session: %lld tokens restored from %s in %.2f s\n",
                   static_cast<long long>(s.n_past()), o.session.c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      s.memory().reset_stats();  // -v reports this run, not the restore
      const std::vector<int32_t>& held = s.tokens();
      if (ids.size() >= held.size() && std::equal(held.begin(), held.end(), ids.begin())) {
        ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(held.size()));
        if (ids.empty()) {
          // Nothing new: read the last token again to have logits to sample from.
          if (!s.truncate(s.n_past() - 1))
            fail("the prompt adds nothing to the session in ", o.session,
                 ", and its memory cannot take back its last token; add text to the prompt");
          ids.push_back(held.back());
        }
      } else {
        ids = tok.encode(text, false, parse_special);
      }
    }
  }
  std::string().swap(text);  // a prompt file may be megabytes long
  const int64_t need = s.n_past() + static_cast<int64_t>(ids.size()) + o.n_predict;
  if (o.ctx > 0 && need > o.ctx)
    fail("prompt (", ids.size(), " tokens",
         s.n_past() > 0 ? cat(" after ", s.n_past(), " held") : "", ") plus -n ", o.n_predict,
         " needs ", need, " positions, more than --ctx ", o.ctx);
  warn_context(l, need);

  GenerateOptions g;
  g.n_predict = o.n_predict;
  g.stop = o.stop;
  g.ignore_eos = o.ignore_eos;
  g.sampling.temperature = o.temp;
  g.sampling.top_k = o.top_k;
  g.sampling.top_p = o.top_p;
  g.sampling.min_p = o.min_p;
  g.sampling.repeat_penalty = o.repeat_penalty;
  g.sampling.repeat_last_n = o.repeat_last_n;
  g.sampling.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  validate(g.sampling);

  const bool echo = o.file.empty() && !o.no_display_prompt && !o.chat && o.chat_template.empty();
  if (!o.json && echo) std::cout << o.prompt << std::flush;  // a prompt file is not echoed
  Generation gen(s, ids, g);
  std::unique_ptr<Progress> prog;
  while (true) {
    const bool prefilling = gen.progress().prefilling();
    if (!gen.step()) break;
    const GenerationProgress p = gen.progress();
    if (prefilling && p.prompt_total >= 4096) {
      if (!prog) prog = std::make_unique<Progress>("prompt", p.prompt_total, "tokens");
      prog->update(p.prompt_done,
                   p.blocks_read > 0 ? cat(p.blocks_read, " blocks read from disk") : "");
      if (!p.prefilling()) prog->finish();
    }
    if (!o.json && !gen.new_text().empty()) std::cout << gen.new_text() << std::flush;
  }
  const GenerateResult& r = gen.result();
  auto save = [&] {
    if (!store || o.session_ro) return;
    // The session holds everything shown: a generation cut by the token limit has not read its
    // last token yet.
    if (r.stop_reason == "length" && !r.tokens.empty()) s.feed(&r.tokens.back(), 1);
    const SaveStats st = save_session(s, *store, "session");
    std::fprintf(stderr, "session: %lld tokens saved to %s (%.1f MiB) in %.2f s\n",
                 static_cast<long long>(st.tokens), o.session.c_str(),
                 static_cast<double>(st.bytes_stored) / (1 << 20), st.seconds);
  };
  if (o.json) {
    nlohmann::json j;
    j["text"] = valid_utf8(r.text);
    j["tokens"] = r.tokens;
    j["n_prompt"] = r.n_prompt;
    j["n_generated"] = r.tokens.size();
    j["stop_reason"] = r.stop_reason;
    j["seed"] = g.sampling.seed;
    j["timings"] = {{"prompt_seconds", r.prompt_seconds},
                    {"prompt_tokens_per_s", r.prompt_tok_s()},
                    {"gen_seconds", r.gen_seconds},
                    {"gen_tokens_per_s", r.gen_tok_s()}};
    std::cout << j.dump() << "\n";
    save();
    return;
  }
  std::cout << std::endl;  // before the timing line on stderr, which may share the terminal
  std::fprintf(stderr,
               "prompt: %lld tokens, %.1f tok/s | generated: %zu tokens, %.1f tok/s | stop: %s\n",
               static_cast<long long>(r.n_prompt), r.prompt_tok_s(), r.tokens.size(), r.gen_tok_s(),
               r.stop_reason.c_str());
  if (o.mo.verbose) std::cerr << s.memory().stats_line() << "\n";
  save();
}

}  // namespace

void register_generate(CLI::App& root) {
  auto o = std::make_shared<GenOpts>();
  CLI::App* cmd = root.add_subcommand("generate", "generate a continuation of a prompt");
  o->mo.add_to(*cmd);
  cmd->add_option("-p,--prompt", o->prompt, "prompt text");
  cmd->add_option("-f,--file", o->file, "read the prompt from a file (may be megabytes long)");
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx,--ctx-size", o->ctx,
                  "most positions the session may hold (0 = no limit)");
  cmd->add_option("--temp", o->temp, "temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", o->min_p, "min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", o->repeat_penalty, "repetition penalty (1 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->repeat_last_n, "tokens the penalty looks back")
      ->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "random seed (default: random)");
  cmd->add_option("--stop", o->stop, "stop string (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-generation tokens");
  cmd->add_flag("--chat", o->chat, "wrap the prompt in the model's chat template");
  cmd->add_option("--chat-template", o->chat_template,
                  "chat template family: chatml, llama2, llama3, mistral, phi3, internlm2");
  cmd->add_option("--system", o->system, "system message (with --chat)");
  cmd->add_flag("--no-display-prompt", o->no_display_prompt, "do not echo the prompt");
  cmd->add_flag("--json", o->json, "print one JSON object with text, tokens and timings");
  cmd->add_option("--session", o->session,
                  "session file: continue the session saved there (when it exists) and save it "
                  "afterwards, for every memory policy");
  cmd->add_flag("--session-ro", o->session_ro, "load --session FILE but do not save it");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace lc::app
