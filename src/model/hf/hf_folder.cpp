// A Hugging Face folder -> the loader's container: hyper-parameter metadata from config.json,
// tokenizer metadata, and every weight tensor under its GGUF name, checked against the shape the
// config implies. Tensor names of each architecture are in the table below.
#include "model/hf/hf_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/names.h"

namespace lc {

namespace {

namespace fs = std::filesystem;

// Storage the container's tensors point into: the mapped files and the transformed copies.
struct Storage {
  SafetensorsSet set;
  std::vector<std::vector<uint8_t>> copies;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// How a tensor's rows are rearranged on the way to the GGUF layout.
enum class Rows { Keep, PermuteQ, PermuteK };

class Builder {
 public:
  Builder(const HfConfig& c, Storage& st, const std::string& dir) : c_(c), st_(st), dir_(dir) {}

  bool has(const std::string& hf) const { return st_.set.find(hf) != nullptr; }

  // The HF tensor `hf` with shape `shape` (outermost first) as GGUF tensor `name`.
  void add(const std::string& name, const std::string& hf, const std::vector<int64_t>& shape,
           Rows rows = Rows::Keep) {
    const SafetensorsFile* file = nullptr;
    const SafetensorsTensor& t = get(hf, shape, &file);
    used_.insert(hf);
    if (rows == Rows::Keep) {
      put(name, t, t.data, shape);
      return;
    }
    const int64_t heads = rows == Rows::PermuteQ ? c_.n_head : c_.n_head_kv;
    std::vector<int64_t> idx(static_cast<size_t>(shape[0]));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    permute(idx, heads);
    put(name, t, gather(t, idx), shape);
    file->release(t);  // only the permuted copy is used
  }

  // InternLM2's fused wqkv: per KV group, the group's query heads then its key and value heads.
  void add_internlm2_qkv(int il, const std::string& hf) {
    const int64_t hd = c_.head_dim, gs = c_.n_head / c_.n_head_kv;
    const int64_t rows = (c_.n_head + 2 * c_.n_head_kv) * hd;
    const SafetensorsFile* file = nullptr;
    const SafetensorsTensor& t = get(hf, {rows, c_.n_embd}, &file);
    used_.insert(hf);
    std::vector<int64_t> q, k, v;
    for (int64_t h = 0; h < c_.n_head; ++h)
      for (int64_t r = 0; r < hd; ++r) q.push_back(((h / gs) * (gs + 2) + h % gs) * hd + r);
    for (int64_t g = 0; g < c_.n_head_kv; ++g)
      for (int64_t r = 0; r < hd; ++r) {
        k.push_back((g * (gs + 2) + gs) * hd + r);
        v.push_back((g * (gs + 2) + gs + 1) * hd + r);
      }
    permute(q, c_.n_head);
    permute(k, c_.n_head_kv);
    using namespace names;
    put(layer(il, kAttnQ), t, gather(t, q), {c_.n_head * hd, c_.n_embd});
    put(layer(il, kAttnK), t, gather(t, k), {c_.n_head_kv * hd, c_.n_embd});
    put(layer(il, kAttnV), t, gather(t, v), {c_.n_head_kv * hd, c_.n_embd});
    file->release(t);
  }

  void ignore(const std::string& hf) { used_.insert(hf); }
  // Every tensor of the checkpoint must have been used: anything left means config.json and the
  // weights disagree (more layers, another architecture).
  void check_all_used() const {
    for (const std::string& n : st_.set.names()) {
      if (used_.count(n) || n.ends_with("rotary_emb.inv_freq")) continue;
      const SafetensorsFile* f = nullptr;
      st_.set.find(n, &f);
      fail(f->path(), ": tensor '", n, "' is not part of a ", c_.hf_arch, " with ", c_.n_layer,
           " layers as ", c_.path, " describes; config.json and the weights disagree");
    }
  }

  std::vector<GgufTensor> tensors;
  uint64_t copied = 0;

 private:
  const SafetensorsTensor& get(const std::string& hf, const std::vector<int64_t>& shape,
                               const SafetensorsFile** file) const {
    const SafetensorsFile* f = nullptr;
    const SafetensorsTensor* t = st_.set.find(hf, &f);
    if (!t)
      fail(dir_, ": missing tensor '", hf, "' (", c_.hf_arch, " with ", c_.n_layer,
           " layers as config.json describes)");
    if (!t->type || (*t->type != TensorType::F32 && *t->type != TensorType::F16 &&
                     *t->type != TensorType::BF16))
      fail(f->path(), ": tensor '", hf, "' has dtype ", t->dtype,
           "; weights must be F32, F16 or BF16");
    if (t->shape != shape)
      fail(f->path(), ": tensor '", hf, "' has shape ", shape_str(t->shape), " but ", c_.path,
           " implies ", shape_str(shape), " (hidden_size ", c_.n_embd, ", heads ", c_.n_head, "/",
           c_.n_head_kv, ", head_dim ", c_.head_dim, ", intermediate_size ", c_.n_ff,
           "); config.json and the weights disagree");
    if (file) *file = f;
    return *t;
  }

  // Row r of the result is row idx[r] of t.
  const uint8_t* gather(const SafetensorsTensor& t, const std::vector<int64_t>& idx) {
    const uint64_t rb = t.nbytes() / static_cast<uint64_t>(t.shape[0]);
    std::vector<uint8_t> out(rb * idx.size());
    for (size_t r = 0; r < idx.size(); ++r)
      std::memcpy(out.data() + r * rb, t.data + static_cast<uint64_t>(idx[r]) * rb, rb);
    copied += out.size();
    st_.copies.push_back(std::move(out));
    return st_.copies.back().data();
  }

  // Within each head of hd rows, GGUF row 2i+j is HF row j*hd/2+i (llama.cpp's permute).
  void permute(std::vector<int64_t>& idx, int64_t heads) const {
    const int64_t hd = static_cast<int64_t>(idx.size()) / heads, half = hd / 2;
    std::vector<int64_t> out(idx.size());
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t j = 0; j < 2; ++j)
          out[static_cast<size_t>(h * hd + 2 * i + j)] =
              idx[static_cast<size_t>(h * hd + j * half + i)];
    idx = std::move(out);
  }

  void put(const std::string& name, const SafetensorsTensor& t, const uint8_t* data,
           const std::vector<int64_t>& shape) {
    const uint64_t es = tensor_type_info(*t.type).type_size;
    uint64_t nbytes = es;
    for (int64_t x : shape) nbytes *= static_cast<uint64_t>(x);
    if (reinterpret_cast<uintptr_t>(data) % es != 0) {  // unaligned in the file: copy
      st_.copies.emplace_back(data, data + nbytes);
      copied += nbytes;
      data = st_.copies.back().data();
    }
    GgufTensor g;
    g.name = name;
    g.ne.assign(shape.rbegin(), shape.rend());
    g.type = *t.type;
    g.nbytes = nbytes;
    g.data = data;
    tensors.push_back(std::move(g));
  }

  const HfConfig& c_;
  Storage& st_;
  const std::string& dir_;
  std::set<std::string> used_;
};

void map_tensors(const HfConfig& c, Builder& b, int64_t n_vocab) {
  using namespace names;
  const int64_t d = c.n_embd, hd = c.head_dim, dq = c.n_head * hd, dkv = c.n_head_kv * hd;
  const bool internlm2 = c.arch == "internlm2", phi3 = c.arch == "phi3";
  // Rotary pairs: llama-layout GGUF architectures interleave them; qwen2 and phi3 keep HF's.
  const bool permute = c.arch == "llama" || internlm2;
  const Rows pq = permute ? Rows::PermuteQ : Rows::Keep, pk = permute ? Rows::PermuteK : Rows::Keep;
  b.add(kTokEmbd, internlm2 ? "model.tok_embeddings.weight" : "model.embed_tokens.weight",
        {n_vocab, d});
  b.add(kOutputNorm, "model.norm.weight", {d});
  const std::string head = internlm2 ? "output.weight" : "lm_head.weight";
  if (!c.tied)
    b.add(kOutput, head, {n_vocab, d});
  else if (b.has(head))
    b.ignore(head);  // tied: the embedding is the output matrix
  for (int il = 0; il < c.n_layer; ++il) {
    const std::string p = "model.layers." + std::to_string(il) + ".";
    if (internlm2) {
      b.add(layer(il, kAttnNorm), p + "attention_norm.weight", {d});
      b.add_internlm2_qkv(il, p + "attention.wqkv.weight");
      b.add(layer(il, kAttnOut), p + "attention.wo.weight", {d, dq});
      b.add(layer(il, kFfnNorm), p + "ffn_norm.weight", {d});
      b.add(layer(il, kFfnGate), p + "feed_forward.w1.weight", {c.n_ff, d});
      b.add(layer(il, kFfnUp), p + "feed_forward.w3.weight", {c.n_ff, d});
      b.add(layer(il, kFfnDown), p + "feed_forward.w2.weight", {d, c.n_ff});
      continue;
    }
    b.add(layer(il, kAttnNorm), p + "input_layernorm.weight", {d});
    if (phi3) {
      b.add(layer(il, kAttnQkv), p + "self_attn.qkv_proj.weight", {dq + 2 * dkv, d});
    } else {
      b.add(layer(il, kAttnQ), p + "self_attn.q_proj.weight", {dq, d}, pq);
      b.add(layer(il, kAttnK), p + "self_attn.k_proj.weight", {dkv, d}, pk);
      b.add(layer(il, kAttnV), p + "self_attn.v_proj.weight", {dkv, d});
      if (c.qkv_bias) {
        b.add(layer(il, kAttnQBias), p + "self_attn.q_proj.bias", {dq}, pq);
        b.add(layer(il, kAttnKBias), p + "self_attn.k_proj.bias", {dkv}, pk);
        b.add(layer(il, kAttnVBias), p + "self_attn.v_proj.bias", {dkv});
      }
    }
    b.add(layer(il, kAttnOut), p + "self_attn.o_proj.weight", {d, dq});
    b.add(layer(il, kFfnNorm), p + "post_attention_layernorm.weight", {d});
    if (phi3) {
      b.add(layer(il, kFfnUp), p + "mlp.gate_up_proj.weight", {2 * c.n_ff, d});
    } else {
      b.add(layer(il, kFfnGate), p + "mlp.gate_proj.weight", {c.n_ff, d});
      b.add(layer(il, kFfnUp), p + "mlp.up_proj.weight", {c.n_ff, d});
    }
    b.add(layer(il, kFfnDown), p + "mlp.down_proj.weight", {d, c.n_ff});
  }
}

// The index or the single weight file; "" when the folder has neither.
std::string weights_path(const std::string& dir) {
  for (const char* n : {"model.safetensors.index.json", "model.safetensors"}) {
    const fs::path p = fs::path(dir) / n;
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

}  // namespace

bool is_model_folder(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

HfFolder open_hf_folder(const std::string& dir) {
  HfFolder out;
  out.config = read_hf_config((fs::path(dir) / "config.json").string());
  const HfConfig& c = out.config;
  auto st = std::make_shared<Storage>();
  const std::string wp = weights_path(dir);
  int64_t n_vocab = c.n_vocab;
  std::vector<GgufTensor> tensors;
  if (wp.empty()) {
    // No weights: a tokenizer-only folder (enough for info and tokenize), sized by vocab_size.
    if (n_vocab <= 0)
      fail(dir, ": no model.safetensors or model.safetensors.index.json (weights of a Hugging ",
           "Face folder; .bin and .pt checkpoints are not read), and config.json has no ",
           "vocab_size for a tokenizer-only folder");
  } else {
    st->set = SafetensorsSet::open(wp);
    // Vocabulary rows: the embedding's; config.json's vocab_size must agree.
    const char* emb_name =
        c.arch == "internlm2" ? "model.tok_embeddings.weight" : "model.embed_tokens.weight";
    const SafetensorsFile* ef = nullptr;
    const SafetensorsTensor* emb = st->set.find(emb_name, &ef);
    if (!emb) fail(dir, ": missing tensor '", emb_name, "'");
    if (emb->shape.size() != 2 || emb->shape[0] < 1)
      fail(ef->path(), ": tensor '", emb_name, "' has shape ", shape_str(emb->shape),
           ", expected [vocab, hidden_size]");
    n_vocab = emb->shape[0];
    if (c.n_vocab > 0 && c.n_vocab != n_vocab)
      fail(ef->path(), ": tensor '", emb_name, "' has ", n_vocab, " rows but ", c.path,
           " says vocab_size ", c.n_vocab, "; config.json and the weights disagree");
    Builder b(c, *st, dir);
    map_tensors(c, b, n_vocab);
    b.check_all_used();
    out.copied_bytes = b.copied;
    tensors = std::move(b.tensors);
  }

  std::vector<std::pair<std::string, GgufValue>> kv;
  const std::string& a = c.arch;
  const auto u32 = [](int64_t v) { return GgufValue::of_u32(static_cast<uint32_t>(v)); };
  const auto set = [&](std::string k, GgufValue v) { kv.emplace_back(std::move(k), std::move(v)); };
  std::string name = fs::path(dir).filename().string();
  if (name.empty()) name = fs::path(dir).parent_path().filename().string();
  set(names::kArchitecture, GgufValue::of_str(a));
  set("general.type", GgufValue::of_str("model"));
  set(names::kModelName, GgufValue::of_str(name));
  if (c.max_pos > 0) set(names::key(a, names::kContextLength), u32(c.max_pos));
  set(names::key(a, names::kEmbeddingLength), u32(c.n_embd));
  set(names::key(a, names::kBlockCount), u32(c.n_layer));
  set(names::key(a, names::kFeedForwardLength), u32(c.n_ff));
  set(names::key(a, names::kHeadCount), u32(c.n_head));
  set(names::key(a, names::kHeadCountKv), u32(c.n_head_kv));
  if (c.head_dim * c.n_head != c.n_embd) {
    set(names::key(a, names::kKeyLength), u32(c.head_dim));
    set(names::key(a, names::kValueLength), u32(c.head_dim));
  }
  set(names::key(a, names::kRmsEps), GgufValue::of_f32(static_cast<float>(c.norm_eps)));
  set(names::key(a, "rope.freq_base"), GgufValue::of_f32(static_cast<float>(c.rope_theta)));
  set(names::key(a, names::kRopeDimCount), u32(c.rope_dim));
  set(names::key(a, names::kVocabSize), u32(n_vocab));
  out.tokenizer_source = hf_tokenizer_metadata(dir, c, n_vocab, kv);

  out.container = GgufFile::assemble(dir, std::move(kv), std::move(tensors), st);
  return out;
}

}  // namespace lc
