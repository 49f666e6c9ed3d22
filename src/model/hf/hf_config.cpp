// config.json of a Hugging Face folder -> model hyper-parameters. RoPE scaling is not read here:
// the folder's config.json is applied by the RoPE configuration (rope_apply_hf_config), which
// knows every rope_scaling form.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/hf/hf_folder.h"

namespace lc {

using json = nlohmann::json;

namespace {

struct ArchName {
  const char* hf;
  const char* model_type;  // config.json's model_type, used when "architectures" is absent
  const char* gguf;
};
constexpr ArchName kArchs[] = {{"LlamaForCausalLM", "llama", "llama"},
                               {"MistralForCausalLM", "mistral", "llama"},
                               {"Qwen2ForCausalLM", "qwen2", "qwen2"},
                               {"InternLM2ForCausalLM", "internlm2", "internlm2"},
                               {"Phi3ForCausalLM", "phi3", "phi3"}};

std::string shown(const json& v) {
  std::string d = v.dump();
  return d.size() > 60 ? d.substr(0, 57) + "..." : d;
}

class Reader {
 public:
  Reader(const json& j, const std::string& path) : j_(j), path_(path) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const char* key, int64_t lo, int64_t hi, std::optional<int64_t> dflt) const {
    const json* v = find(key);
    if (!v) {
      if (!dflt) fail(path_, ": missing \"", key, "\"");
      return *dflt;
    }
    if (!v->is_number_integer() &&
        !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()))
      fail(path_, ": \"", key, "\" = ", shown(*v), " is not an integer");
    const double d = v->get<double>();
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      fail(path_, ": \"", key, "\" = ", shown(*v), " is out of range (expected ", lo, "..", hi,
           ")");
    return static_cast<int64_t>(d);
  }
  double number(const char* key, double dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      fail(path_, ": \"", key, "\" = ", shown(*v), " is not a number");
    return v->get<double>();
  }
  bool boolean(const char* key, bool dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(path_, ": \"", key, "\" = ", shown(*v), " is not true or false");
    return v->get<bool>();
  }
  // An id, or the first of a list of ids; -1 when absent.
  int64_t token_id(const char* key) const {
    const json* v = find(key);
    if (v && v->is_array() && !v->empty()) v = &(*v)[0];
    if (!v) return -1;
    if (!v->is_number_integer() || v->get<int64_t>() < 0)
      fail(path_, ": \"", key, "\" = ", shown(*v), " is not a token id");
    return v->get<int64_t>();
  }

 private:
  const json& j_;
  const std::string& path_;
};

HfConfig read_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open (a Hugging Face model folder needs a config.json)");
  std::ostringstream os;
  os << in.rdbuf();
  json j;
  try {
    j = json::parse(os.str());
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(path, ": expected a JSON object (a Hugging Face config.json)");

  HfConfig c;
  c.path = path;
  const json* archs = j.contains("architectures") ? &j["architectures"] : nullptr;
  if (archs && archs->is_array() && !archs->empty() && (*archs)[0].is_string()) {
    c.hf_arch = (*archs)[0].get<std::string>();
    for (const ArchName& a : kArchs)
      if (c.hf_arch == a.hf) c.arch = a.gguf;
  } else if (j.contains("model_type") && j["model_type"].is_string()) {
    c.hf_arch = j["model_type"].get<std::string>();
    for (const ArchName& a : kArchs)
      if (c.hf_arch == a.model_type) {
        c.arch = a.gguf;
        c.hf_arch = a.hf;
      }
  } else {
    fail(path, ": no \"architectures\" list (expected e.g. [\"LlamaForCausalLM\"]) and no ",
         "\"model_type\"");
  }
  if (c.arch.empty()) {
    std::string names;
    for (const ArchName& a : kArchs) names += std::string(names.empty() ? "" : ", ") + a.hf;
    fail(path, ": architecture \"", c.hf_arch, "\" is not supported (supported: ", names, ")");
  }

  const Reader r(j, path);
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  c.n_layer = r.integer("num_hidden_layers", 1, 4096, std::nullopt);
  c.n_embd = r.integer("hidden_size", 1, kMaxDim, std::nullopt);
  c.n_head = r.integer("num_attention_heads", 1, 4096, std::nullopt);
  c.n_head_kv = r.integer("num_key_value_heads", 1, c.n_head, c.n_head);
  if (c.n_head % c.n_head_kv != 0)
    fail(path, ": num_attention_heads ", c.n_head, " is not a multiple of num_key_value_heads ",
         c.n_head_kv);
  c.n_ff = r.integer("intermediate_size", 1, kMaxDim, std::nullopt);
  if (!r.find("head_dim") && c.n_embd % c.n_head != 0)
    fail(path, ": hidden_size ", c.n_embd, " is not a multiple of num_attention_heads ", c.n_head,
         " and there is no head_dim");
  c.head_dim = r.integer("head_dim", 2, 4096, c.n_embd / c.n_head);
  if (c.head_dim % 2 != 0) fail(path, ": head dimension ", c.head_dim, " is odd; RoPE needs pairs");
  c.n_vocab = r.integer("vocab_size", 1, int64_t{1} << 24, 0);
  c.max_pos = r.integer("max_position_embeddings", 1, (int64_t{1} << 32) - 1, 0);
  // Defaults of the transformers configuration classes: 1e-5 for Phi-3, 1e-6 for the others.
  c.norm_eps = r.number("rms_norm_eps", c.arch == "phi3" ? 1e-5 : 1e-6);
  if (!(c.norm_eps > 0 && c.norm_eps < 1))
    fail(path, ": \"rms_norm_eps\" = ", c.norm_eps, " is out of range (0, 1)");
  c.rope_theta = r.number("rope_theta", 10000.0);
  if (!(c.rope_theta > 1)) fail(path, ": \"rope_theta\" = ", c.rope_theta, " must be > 1");
  const double prf = r.number("partial_rotary_factor", 1.0);
  if (!(prf > 0 && prf <= 1))
    fail(path, ": \"partial_rotary_factor\" = ", prf, " is out of range (0, 1]");
  c.rope_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * prf);
  if (c.rope_dim % 2 != 0 || c.rope_dim < 2)
    fail(path, ": rotary dimension ", c.rope_dim,
         " (head_dim x partial_rotary_factor) is not even");
  c.tied = r.boolean("tie_word_embeddings", false);
  if (c.arch == "qwen2")
    c.qkv_bias = true;
  else if (c.arch == "internlm2")
    c.qkv_bias = r.boolean("bias", false);
  else if (c.arch == "llama")
    c.qkv_bias = r.boolean("attention_bias", false);
  if (c.arch == "internlm2" && c.qkv_bias)
    fail(path, ": \"bias\": true (InternLM2 projection biases) is not supported");
  if (r.boolean("mlp_bias", false)) fail(path, ": \"mlp_bias\": true is not supported");
  if (const json* act = r.find("hidden_act"))
    if (!act->is_string() || act->get<std::string>() != "silu")
      fail(path, ": \"hidden_act\" = ", shown(*act), " is not supported (expected \"silu\")");
  c.bos_id = r.token_id("bos_token_id");
  c.eos_id = r.token_id("eos_token_id");
  return c;
}

}  // namespace

HfConfig read_hf_config(const std::string& path) {
  try {
    return read_config(path);
  } catch (const json::exception& e) {
    fail(path, ": a value of the wrong type (", e.what(), ")");
  }
}

}  // namespace lc
