// longctx info: what a GGUF file or a Hugging Face folder holds — architecture, sizes, tensor
// types, tokenizer, RoPE; with -v the load time, peak RSS and the tensor bytes copied at load.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "engine/memory_config.h"
#include "model/arch/arch.h"
#include "model/tokenizer/chat_template.h"

namespace lc::app {

namespace {

void run_info(const std::string& path, const SessionSpec& settings, bool json, bool verbose) {
  const RopeOverrides& ov = settings.rope;
  const auto t0 = std::chrono::steady_clock::now();
  auto model = Model::load(path);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Model& m = *model;
  const std::string hf_config = settings.hf_config.value_or(m.hf_config());
  const HParams& hp = m.hparams();
  const GgufFile& f = m.gguf();
  const Tokenizer& tok = m.tokenizer();

  std::map<std::string, std::pair<int64_t, int64_t>> types;  // name -> (tensors, elements)
  uint64_t data_bytes = 0;
  int64_t n_params = 0;
  for (const auto& t : f.tensors()) {
    auto& e = types[std::string(tensor_type_info(t.type).name)];
    e.first++;
    e.second += t.n_elements();
    data_bytes += t.nbytes;
    n_params += t.n_elements();
  }
  const ArchSpec* spec = find_arch(hp.arch);
  // The KV cache a session gets by default (--memory full, default_kv_type): bytes per token.
  const KvType kv_default = default_kv_type(MemoryPolicy::Full);
  const int64_t kv_row = static_cast<int64_t>(hp.n_head_kv) * hp.head_dim;
  const size_t kv_per_token =
      kv_row > 0 && kv_row % kv_type_block(kv_default) == 0
          ? 2 * static_cast<size_t>(hp.n_layer) * kv_bytes(kv_default, kv_row)
          : 0;
  std::optional<RopeSettings> rope;
  std::string rope_error;
  if (spec && hp.head_dim > 0) {
    try {
      rope = rope_resolve(&f, hp.arch, hp.head_dim, spec->rope_layout, hf_config, ov);
    } catch (const Error& e) {
      rope_error = e.what();
    }
  }

  if (json) {
    nlohmann::json j;
    j["file"] = path;
    j["format"] = m.hf_config().empty() ? "gguf" : "hf_folder";
    j["load_seconds"] = load_s;
    j["peak_rss_mib"] = peak_rss_mb();
    j["copied_bytes"] = m.copied_bytes();
    j["gguf_version"] = f.version();
    j["architecture"] = hp.arch;
    j["name"] = hp.name;
    j["supported"] = spec != nullptr;
    j["has_weights"] = m.has_weights();
    j["n_params"] = n_params;
    j["data_bytes"] = data_bytes;
    j["n_layer"] = hp.n_layer;
    j["n_embd"] = hp.n_embd;
    j["n_head"] = hp.n_head;
    j["n_head_kv"] = hp.n_head_kv;
    j["head_dim"] = hp.head_dim;
    j["n_ff"] = hp.n_ff;
    j["n_vocab"] = hp.n_vocab;
    j["context_length"] = hp.n_ctx_train;
    j["tied_output"] = m.weights().tied_output;
    if (m.has_weights() && kv_per_token > 0)
      j["kv_cache"] = {{"type", kv_type_name(kv_default)}, {"bytes_per_token", kv_per_token}};
    auto jt = nlohmann::json::object();
    for (const auto& [name, e] : types) jt[name] = {{"tensors", e.first}, {"elements", e.second}};
    j["tensor_types"] = jt;
    j["tokenizer"] = {{"model", tok.model_name()}, {"pre", tok.pre_name()},
                      {"n_vocab", tok.n_vocab()},  {"bos", tok.bos()},
                      {"eos", tok.eos()},          {"add_bos", tok.add_bos()},
                      {"add_eos", tok.add_eos()},  {"chat_template", !tok.chat_template().empty()}};
    if (rope) {
      j["rope"] = {{"summary", rope_summary(*rope)},
                   {"method", rope_method_name(rope->method)},
                   {"base", rope->base},
                   {"dim", rope->dim},
                   {"factor", rope->factor},
                   {"original_context", rope->orig_ctx},
                   {"sources", rope->source}};
    } else if (!rope_error.empty()) {
      j["rope_error"] = rope_error;
    }
    std::cout << j.dump(1) << "\n";
    return;
  }

  if (m.hf_config().empty())
    std::cout << "file:            " << path << " (GGUF v" << f.version() << ", " << f.file_size()
              << " bytes)\n";
  else
    std::cout << "folder:          " << path << " (Hugging Face: " << m.hf_config() << ", "
              << f.tensors().size() << " tensors, " << f.file_size() << " bytes)\n";
  if (verbose) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.3f s, peak RSS %.1f MiB, %.1f MiB of tensors copied", load_s,
                  peak_rss_mb(), static_cast<double>(m.copied_bytes()) / (1024.0 * 1024.0));
    std::cout << "load:            " << buf
              << (m.hf_config().empty() ? "" : " (the rest memory-mapped)") << "\n";
  }
  std::cout << "architecture:    " << hp.arch << (spec ? "" : " (not supported for inference)")
            << (hp.name.empty() ? "" : "  name: " + hp.name) << "\n";
  if (m.has_weights()) {
    std::cout << "parameters:      " << n_params << " (" << data_bytes / (1024.0 * 1024.0)
              << " MiB of tensor data)\n";
    std::cout << "layers:          " << hp.n_layer << ", dim " << hp.n_embd << ", ffn " << hp.n_ff
              << "\n";
    std::cout << "heads:           " << hp.n_head << " query / " << hp.n_head_kv
              << " key-value, head dim " << hp.head_dim << "\n";
    if (kv_per_token > 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s by default, %.1f KiB per token (%.0f MiB at %lld tokens)",
                    kv_type_name(kv_default), static_cast<double>(kv_per_token) / 1024.0,
                    static_cast<double>(kv_per_token) * hp.n_ctx_train / (1024.0 * 1024.0),
                    static_cast<long long>(hp.n_ctx_train));
      std::cout << "kv cache:        " << buf << " (--memory full; --kv-type f32|f16|q8_0)\n";
    }
    std::cout << "vocab:           " << hp.n_vocab
              << (m.weights().tied_output ? " (tied output)" : "") << "\n";
    std::cout << "tensor types:   ";
    for (const auto& [name, e] : types) std::cout << " " << name << " x" << e.first;
    std::cout << "\n";
  } else {
    std::cout << "weights:         none (tokenizer-only file)\n";
  }
  std::cout << "context length:  " << hp.n_ctx_train << " (" << hp.arch
            << ".context_length as stored; the trained length may differ)\n";
  std::cout << "tokenizer:       " << tok.model_name() << " (pre: " << tok.pre_name() << "), "
            << tok.n_vocab() << " tokens, bos " << tok.bos() << ", eos " << tok.eos()
            << ", add_bos " << (tok.add_bos() ? "yes" : "no") << "\n";
  if (!tok.chat_template().empty()) {
    std::string fam;
    try {
      fam = std::string(chat_format_name(detect_chat_format(tok.chat_template())));
    } catch (const Error&) {
      fam = "unrecognised";
    }
    std::cout << "chat template:   " << fam << "\n";
  }
  if (rope) {
    // The summary, then each parameter with its source under it.
    const std::vector<std::string> lines = rope_describe(*rope);
    for (size_t i = 0; i < lines.size(); ++i)
      std::cout << (i == 0 ? "rope:            " : "                 ") << lines[i] << "\n";
  } else if (!rope_error.empty()) {
    std::cout << "rope:            error: " << rope_error << "\n";
  }
}

}  // namespace

void register_info(CLI::App& root) {
  struct Opts {
    std::string model, model_opt;
    bool json = false, verbose = false;
    ModelOptions mo;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "info", "describe a GGUF model or tokenizer file, or a Hugging Face model folder");
  cmd->add_option("file", o->model, "GGUF file or Hugging Face model folder");
  cmd->add_option("-m,--model", o->model_opt, "the same, as an option");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("-v,--verbose", o->verbose, "also print load time, peak RSS and copied bytes");
  o->mo.add_rope_options(*cmd);
  cmd->callback([o] {
    const std::string& path = o->model_opt.empty() ? o->model : o->model_opt;
    if (path.empty()) fail("give the model: a GGUF file or a Hugging Face folder");
    run_info(path, o->mo.spec(), o->json, o->verbose);
  });
}

}  // namespace lc::app
