#include "support/tiny_model.h"

#include <random>
#include <vector>

#include "core/gguf.h"
#include "kernels/quant.h"
#include "support/paths.h"

namespace lc::test {

namespace {

struct Builder {
  GgufWriter& w;
  std::mt19937 rng;
  TensorType type;

  std::vector<float> rand(int64_t n, float scale) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(rng);
    return v;
  }
  void matrix(const std::string& name, int64_t n_in, int64_t n_out, TensorType t) {
    const auto v = rand(n_in * n_out, 1.0f / std::sqrt(static_cast<float>(n_in)));
    const TensorTypeInfo& ti = tensor_type_info(t);
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes(ti, n_in) * n_out));
    for (int64_t r = 0; r < n_out; ++r)
      quantize_row_ref(t, v.data() + r * n_in, bytes.data() + r * row_bytes(ti, n_in), n_in);
    w.add_tensor(name, {n_in, n_out}, t, bytes.data(), bytes.size());
  }
  void norm(const std::string& name, int64_t n) {
    auto v = rand(n, 0.1f);
    for (auto& x : v) x += 1.0f;
    w.add_tensor_f32(name, {n}, v);
  }
  void bias(const std::string& name, int64_t n) { w.add_tensor_f32(name, {n}, rand(n, 0.1f)); }
};

}  // namespace

void write_tiny_model(const TinyModelSpec& s, const std::string& path) {
  auto src = GgufFile::open(shared_path("models/stories260K.gguf"));
  GgufWriter w;
  const std::string& a = s.arch;
  w.set("general.architecture", GgufValue::of_str(a));
  w.set("general.name", GgufValue::of_str("tiny-" + a));
  w.set(a + ".block_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_layer)));
  w.set(a + ".embedding_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_embd)));
  w.set(a + ".feed_forward_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ff)));
  w.set(a + ".attention.head_count", GgufValue::of_u32(static_cast<uint32_t>(s.n_head)));
  w.set(a + ".attention.head_count_kv", GgufValue::of_u32(static_cast<uint32_t>(s.n_head_kv)));
  w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::of_f32(1e-5f));
  w.set(a + ".context_length", GgufValue::of_u32(static_cast<uint32_t>(s.n_ctx)));
  w.set(a + ".rope.freq_base", GgufValue::of_f32(10000.0f));
  for (const auto& [k, v] : src->metadata())
    if (k.rfind("tokenizer.", 0) == 0) w.set(k, v);

  const int64_t n_vocab = 512, d = s.n_embd, hd = s.n_embd / s.n_head;
  const int64_t dq = s.n_head * hd, dkv = s.n_head_kv * hd;
  Builder b{w, std::mt19937(s.seed), s.type};
  b.matrix("token_embd.weight", d, n_vocab, s.type);
  b.norm("output_norm.weight", d);
  if (!s.tied_output) b.matrix("output.weight", d, n_vocab, s.type);
  for (int il = 0; il < s.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    b.norm(p + "attn_norm.weight", d);
    if (s.fused && (a == "phi3" || a == "internlm2")) {
      b.matrix(p + "attn_qkv.weight", d, dq + 2 * dkv, s.type);
    } else {
      b.matrix(p + "attn_q.weight", d, dq, s.type);
      b.matrix(p + "attn_k.weight", d, dkv, s.type);
      b.matrix(p + "attn_v.weight", d, dkv, s.type);
    }
    if (a == "qwen2") {
      b.bias(p + "attn_q.bias", dq);
      b.bias(p + "attn_k.bias", dkv);
      b.bias(p + "attn_v.bias", dkv);
    }
    b.matrix(p + "attn_output.weight", dq, d, s.type);
    b.norm(p + "ffn_norm.weight", d);
    if (s.fused && a == "phi3") {
      b.matrix(p + "ffn_up.weight", d, 2 * s.n_ff, s.type);
    } else {
      b.matrix(p + "ffn_gate.weight", d, s.n_ff, s.type);
      b.matrix(p + "ffn_up.weight", d, s.n_ff, s.type);
    }
    b.matrix(p + "ffn_down.weight", s.n_ff, d, s.type);
  }
  w.write(path);
}

}  // namespace lc::test
