#include "support/hf_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "core/fp16.h"
#include "core/safetensors.h"

namespace lc::test {

namespace {

using json = nlohmann::json;

std::string hf_arch_name(const std::string& a) {
  if (a == "llama") return "LlamaForCausalLM";
  if (a == "mistral") return "MistralForCausalLM";
  if (a == "qwen2") return "Qwen2ForCausalLM";
  if (a == "internlm2") return "InternLM2ForCausalLM";
  if (a == "phi3") return "Phi3ForCausalLM";
  throw std::runtime_error("unknown test architecture " + a);
}

// Rounds to the stored dtype, so the reference sees the values the files hold.
void round_to(const std::string& dtype, std::vector<float>& v) {
  for (float& x : v) {
    if (dtype == "F16") x = fp16_to_f32(f32_to_fp16(x));
    if (dtype == "BF16") x = bf16_to_f32(f32_to_bf16(x));
  }
}

std::vector<uint8_t> encode(const std::string& dtype, const std::vector<float>& v) {
  std::vector<uint8_t> out;
  if (dtype == "F32") {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  out.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = dtype == "F16" ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

// Rows of several matrices stacked.
std::vector<float> stack(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// GPT-2's byte -> unicode code point mapping.
std::vector<uint32_t> byte_chars() {
  std::vector<uint32_t> m(256);
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    m[b] = printable ? b : 256 + n++;
  }
  return m;
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

void write_tiny_tokenizer_json(const HfModelSpec& spec, const std::string& dir) {
  const std::vector<uint32_t> bc = byte_chars();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8(bc[static_cast<size_t>(b)])] = b;
  json merges = json::array();
  const int n_specials = 3;
  int id = 256;
  for (char a = 'a'; a <= 'z' && id < spec.n_vocab - n_specials; ++a)
    for (char b = 'a'; b <= 'z' && id < spec.n_vocab - n_specials; ++b) {
      const std::string l(1, a), r(1, b);
      merges.push_back(l + " " + r);
      vocab[l + r] = id++;
    }
  json added = json::array();
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    added.push_back({{"id", id++},
                     {"content", s},
                     {"special", true},
                     {"normalized", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"single_word", false}});
  json tj = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"byte_fallback", false}}}};
  std::ofstream(dir + "/tokenizer.json") << tj.dump();
}

HfWeights write_hf_model(const HfModelSpec& s, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const int hd = s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head, dq = s.n_head * hd,
            dkv = s.n_head_kv * hd;
  const bool bias = s.arch == "qwen2";
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const auto mat = [&](int rows, int cols) {
    std::vector<float> v(static_cast<size_t>(rows) * static_cast<size_t>(cols));
    const float sc = 1.0f / std::sqrt(static_cast<float>(cols));
    for (float& x : v) x = nd(rng) * sc;
    round_to(s.dtype, v);
    return v;
  };
  const auto vec = [&](int n, float base, float sc) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = base + sc * nd(rng);
    round_to(s.dtype, v);
    return v;
  };

  HfWeights w;
  w.embed = mat(s.n_vocab, s.n_embd);
  for (float& x : w.embed) x *= 4.0f;  // unit-size rows
  round_to(s.dtype, w.embed);
  w.norm = vec(s.n_embd, 1.0f, 0.1f);
  if (!s.tied) w.lm_head = mat(s.n_vocab, s.n_embd);
  w.layers.resize(static_cast<size_t>(s.n_layer));
  for (HfLayer& l : w.layers) {
    l.attn_norm = vec(s.n_embd, 1.0f, 0.1f);
    l.q = mat(dq, s.n_embd);
    l.k = mat(dkv, s.n_embd);
    l.v = mat(dkv, s.n_embd);
    if (bias) {
      l.bq = vec(dq, 0.0f, 0.1f);
      l.bk = vec(dkv, 0.0f, 0.1f);
      l.bv = vec(dkv, 0.0f, 0.1f);
    }
    l.o = mat(s.n_embd, dq);
    l.ffn_norm = vec(s.n_embd, 1.0f, 0.1f);
    l.gate = mat(s.n_ff, s.n_embd);
    l.up = mat(s.n_ff, s.n_embd);
    l.down = mat(s.n_embd, s.n_ff);
  }

  // Tensors in HF names.
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data;
  };
  std::vector<T> ts;
  const bool ilm = s.arch == "internlm2", phi3 = s.arch == "phi3";
  const int64_t d = s.n_embd;
  ts.push_back(
      {ilm ? "model.tok_embeddings.weight" : "model.embed_tokens.weight", {s.n_vocab, d}, w.embed});
  for (int il = 0; il < s.n_layer; ++il) {
    const HfLayer& l = w.layers[static_cast<size_t>(il)];
    const std::string p = "model.layers." + std::to_string(il) + ".";
    if (ilm) {
      const int gs = s.n_head / s.n_head_kv;
      std::vector<float> qkv;
      const auto rows = [&](const std::vector<float>& m, int head) {
        const auto b = m.begin() + static_cast<int64_t>(head) * hd * d;
        qkv.insert(qkv.end(), b, b + static_cast<int64_t>(hd) * d);
      };
      for (int g = 0; g < s.n_head_kv; ++g) {
        for (int j = 0; j < gs; ++j) rows(l.q, g * gs + j);
        rows(l.k, g);
        rows(l.v, g);
      }
      ts.push_back({p + "attention_norm.weight", {d}, l.attn_norm});
      ts.push_back({p + "attention.wqkv.weight", {dq + 2 * dkv, d}, qkv});
      ts.push_back({p + "attention.wo.weight", {d, dq}, l.o});
      ts.push_back({p + "ffn_norm.weight", {d}, l.ffn_norm});
      ts.push_back({p + "feed_forward.w1.weight", {s.n_ff, d}, l.gate});
      ts.push_back({p + "feed_forward.w3.weight", {s.n_ff, d}, l.up});
      ts.push_back({p + "feed_forward.w2.weight", {d, s.n_ff}, l.down});
      continue;
    }
    ts.push_back({p + "input_layernorm.weight", {d}, l.attn_norm});
    if (phi3) {
      ts.push_back({p + "self_attn.qkv_proj.weight", {dq + 2 * dkv, d}, stack({&l.q, &l.k, &l.v})});
    } else {
      ts.push_back({p + "self_attn.q_proj.weight", {dq, d}, l.q});
      ts.push_back({p + "self_attn.k_proj.weight", {dkv, d}, l.k});
      ts.push_back({p + "self_attn.v_proj.weight", {dkv, d}, l.v});
      if (bias) {
        ts.push_back({p + "self_attn.q_proj.bias", {dq}, l.bq});
        ts.push_back({p + "self_attn.k_proj.bias", {dkv}, l.bk});
        ts.push_back({p + "self_attn.v_proj.bias", {dkv}, l.bv});
      }
    }
    ts.push_back({p + "self_attn.o_proj.weight", {d, dq}, l.o});
    ts.push_back({p + "post_attention_layernorm.weight", {d}, l.ffn_norm});
    if (phi3) {
      ts.push_back({p + "mlp.gate_up_proj.weight", {2 * s.n_ff, d}, stack({&l.gate, &l.up})});
    } else {
      ts.push_back({p + "mlp.gate_proj.weight", {s.n_ff, d}, l.gate});
      ts.push_back({p + "mlp.up_proj.weight", {s.n_ff, d}, l.up});
    }
    ts.push_back({p + "mlp.down_proj.weight", {d, s.n_ff}, l.down});
  }
  ts.push_back({"model.norm.weight", {d}, w.norm});
  if (!s.tied) ts.push_back({ilm ? "output.weight" : "lm_head.weight", {s.n_vocab, d}, w.lm_head});

  const int n_shards = std::max(1, s.shards);
  std::vector<SafetensorsWriter> writers(static_cast<size_t>(n_shards));
  json weight_map = json::object();
  for (size_t i = 0; i < ts.size(); ++i) {
    const size_t k = i * static_cast<size_t>(n_shards) / ts.size();
    const std::vector<uint8_t> bytes = encode(s.dtype, ts[i].data);
    writers[k].add(ts[i].name, s.dtype, ts[i].shape, bytes.data(), bytes.size());
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05d.safetensors", k + 1, n_shards);
    weight_map[ts[i].name] = name;
  }
  if (n_shards == 1) {
    writers[0].write(dir + "/model.safetensors");
  } else {
    for (size_t k = 0; k < writers.size(); ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05d.safetensors", k + 1, n_shards);
      writers[k].write(dir + "/" + name);
    }
    std::ofstream(dir + "/model.safetensors.index.json")
        << json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(1);
  }

  std::string cfg = json{
      {"architectures", {hf_arch_name(s.arch)}},
      {"hidden_size", s.n_embd},
      {"num_hidden_layers", s.n_layer},
      {"num_attention_heads", s.n_head},
      {"num_key_value_heads", s.n_head_kv},
      {"intermediate_size", s.n_ff},
      {"vocab_size", s.n_vocab},
      {"max_position_embeddings", s.max_pos},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", s.theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", s.tied},
      {"bos_token_id", s.n_vocab - 3},
      {"eos_token_id", s.n_vocab - 3},
      {"torch_dtype",
       "float32"}}.dump(1);
  if (s.head_dim > 0) {
    nlohmann::json j = nlohmann::json::parse(cfg);
    j["head_dim"] = s.head_dim;
    cfg = j.dump(1);
  }
  if (!s.rope_scaling.empty()) {
    cfg.pop_back();  // "}" -> add the raw rope_scaling entry
    while (!cfg.empty() && (cfg.back() == '\n' || cfg.back() == ' ')) cfg.pop_back();
    cfg += ",\n \"rope_scaling\": " + s.rope_scaling + "\n}";
  }
  std::ofstream(dir + "/config.json") << cfg;
  write_tiny_tokenizer_json(s, dir);
  return w;
}

std::vector<std::vector<double>> hf_reference_logits(const HfModelSpec& s, const HfWeights& w,
                                                     const std::vector<int32_t>& tokens) {
  const int d = s.n_embd, hd = s.head_dim > 0 ? s.head_dim : d / s.n_head, half = hd / 2,
            gs = s.n_head / s.n_head_kv;
  const size_t T = tokens.size();
  // out[r] = sum_c m[r][c] x[c] (+ b[r])
  const auto matvec = [](const std::vector<float>& m, const std::vector<double>& x, int rows,
                         const std::vector<float>& b) {
    std::vector<double> y(static_cast<size_t>(rows));
    const size_t cols = x.size();
    for (size_t r = 0; r < y.size(); ++r) {
      double acc = b.empty() ? 0.0 : b[r];
      for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(m[r * cols + c]) * x[c];
      y[r] = acc;
    }
    return y;
  };
  const auto rmsnorm = [](const std::vector<double>& x, const std::vector<float>& g) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + 1e-5);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
    return y;
  };
  // Hugging Face rotate_half: pairs (i, i + hd/2) of each head.
  const auto rope = [&](std::vector<double>& v, int heads, size_t pos) {
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i) {
        const double inv = std::pow(s.theta, -2.0 * i / hd);
        const double a = static_cast<double>(pos) * inv, c = std::cos(a), sn = std::sin(a);
        double& x1 = v[static_cast<size_t>(h * hd + i)];
        double& x2 = v[static_cast<size_t>(h * hd + i + half)];
        const double y1 = x1 * c - x2 * sn, y2 = x2 * c + x1 * sn;
        x1 = y1;
        x2 = y2;
      }
  };

  std::vector<std::vector<double>> x(T);
  for (size_t t = 0; t < T; ++t) {
    x[t].resize(static_cast<size_t>(d));
    for (int i = 0; i < d; ++i)
      x[t][static_cast<size_t>(i)] = w.embed[static_cast<size_t>(tokens[t]) * d + i];
  }
  for (const HfLayer& l : w.layers) {
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const auto h = rmsnorm(x[t], l.attn_norm);
      q[t] = matvec(l.q, h, s.n_head * hd, l.bq);
      k[t] = matvec(l.k, h, s.n_head_kv * hd, l.bk);
      v[t] = matvec(l.v, h, s.n_head_kv * hd, l.bv);
      rope(q[t], s.n_head, t);
      rope(k[t], s.n_head_kv, t);
    }
    for (size_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(s.n_head * hd), 0.0);
      for (int h = 0; h < s.n_head; ++h) {
        const int kh = h / gs;
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (size_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int i = 0; i < hd; ++i)
            dot += q[t][static_cast<size_t>(h * hd + i)] * k[u][static_cast<size_t>(kh * hd + i)];
          sc[u] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, sc[u]);
        }
        double sum = 0;
        for (double& e : sc) sum += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u)
          for (int i = 0; i < hd; ++i)
            att[static_cast<size_t>(h * hd + i)] +=
                sc[u] / sum * v[u][static_cast<size_t>(kh * hd + i)];
      }
      const auto o = matvec(l.o, att, d, {});
      for (int i = 0; i < d; ++i) x[t][static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      const auto h = rmsnorm(x[t], l.ffn_norm);
      const auto g = matvec(l.gate, h, s.n_ff, {});
      const auto u = matvec(l.up, h, s.n_ff, {});
      std::vector<double> a(g.size());
      for (size_t i = 0; i < a.size(); ++i) a[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      const auto dn = matvec(l.down, a, d, {});
      for (int i = 0; i < d; ++i) x[t][static_cast<size_t>(i)] += dn[static_cast<size_t>(i)];
    }
  }
  std::vector<std::vector<double>> logits(T);
  for (size_t t = 0; t < T; ++t)
    logits[t] = matvec(s.tied ? w.embed : w.lm_head, rmsnorm(x[t], w.norm), s.n_vocab, {});
  return logits;
}

}  // namespace lc::test
