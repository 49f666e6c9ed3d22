#include "model/model.h"

#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/tensor_loader.h"
#include "model/hf/hf_folder.h"
#include "model/names.h"
#include "model/rope/rope_config.h"

namespace lc {

namespace {

int64_t required_int(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) fail(f.path(), ": missing metadata key '", key, "'");
  return *v;
}

void check_positive(const GgufFile& f, const std::string& key, int64_t v, int64_t max) {
  if (v <= 0 || v > max)
    fail(f.path(), ": metadata '", key, "' = ", v, " is out of range (expected 1..", max, ")");
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

MemoryDims Model::memory_dims() const {
  MemoryDims d;
  d.n_layer = hp_.n_layer;
  d.attn.n_head = hp_.n_head;
  d.attn.n_head_kv = hp_.n_head_kv;
  d.attn.head_dim = hp_.head_dim;
  d.attn.scale = 1.0f / std::sqrt(static_cast<float>(hp_.head_dim));
  return d;
}

std::shared_ptr<const Model> Model::load(const std::string& path) {
  std::shared_ptr<Model> m(new Model());
  if (is_model_folder(path)) {
    HfFolder hf = open_hf_folder(path);
    m->file_ = hf.container;
    m->hf_config_ = hf.config.path;
    m->copied_bytes_ = hf.copied_bytes;
  } else {
    m->file_ = GgufFile::open(path);
  }
  const GgufFile& f = *m->file_;
  m->tok_ = Tokenizer::from_gguf(f);

  HParams& hp = m->hp_;
  auto arch = f.get_str(names::kArchitecture);
  if (!arch) fail(path, ": missing metadata key '", names::kArchitecture, "'");
  hp.arch = *arch;
  hp.name = f.get_str_or(names::kModelName, "");
  m->has_weights_ = !f.tensors().empty();
  const ArchSpec* spec = find_arch(hp.arch);
  if (!m->has_weights_) {
    // Tokenizer-only file: keep what metadata says for `info`, nothing more.
    hp.n_ctx_train = f.get_int_or(names::key(hp.arch, names::kContextLength), 0);
    hp.n_vocab = m->tok_->n_vocab();
    if (spec) {
      const int64_t n_embd = f.get_int_or(names::key(hp.arch, names::kEmbeddingLength), 0);
      const int64_t n_head = f.get_int_or(names::key(hp.arch, names::kHeadCount), 0);
      if (n_embd > 0 && n_head > 0) {
        hp.head_dim = static_cast<int>(n_embd / n_head);
        m->rope_ = rope_from_gguf(f, hp.arch, hp.head_dim, spec->rope_layout);
      }
    }
    return m;
  }
  if (!spec)
    fail(path, ": unsupported architecture '", hp.arch, "' (supported: ", joined(supported_archs()),
         ")");

  const auto key = [&](const char* k) { return names::key(hp.arch, k); };
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  const int64_t n_layer = required_int(f, key(names::kBlockCount));
  check_positive(f, key(names::kBlockCount), n_layer, 4096);
  const int64_t n_embd = required_int(f, key(names::kEmbeddingLength));
  check_positive(f, key(names::kEmbeddingLength), n_embd, kMaxDim);
  const int64_t n_head = required_int(f, key(names::kHeadCount));
  check_positive(f, key(names::kHeadCount), n_head, 4096);
  const int64_t n_head_kv = f.get_int_or(key(names::kHeadCountKv), n_head);
  check_positive(f, key(names::kHeadCountKv), n_head_kv, n_head);
  if (n_head % n_head_kv != 0)
    fail(path, ": ", key(names::kHeadCount), " = ", n_head, " is not a multiple of ",
         key(names::kHeadCountKv), " = ", n_head_kv);
  const int64_t n_ff = required_int(f, key(names::kFeedForwardLength));
  check_positive(f, key(names::kFeedForwardLength), n_ff, kMaxDim);
  const int64_t head_dim = f.get_int_or(key(names::kKeyLength), n_embd / n_head);
  check_positive(f, key(names::kKeyLength), head_dim, 4096);
  if (f.get_int_or(key(names::kValueLength), head_dim) != head_dim)
    fail(path, ": ", key(names::kValueLength), " differs from the key length; not supported");
  if (head_dim % 2 != 0) fail(path, ": head dimension ", head_dim, " is odd; RoPE needs pairs");

  hp.n_layer = static_cast<int>(n_layer);
  hp.n_embd = static_cast<int>(n_embd);
  hp.n_head = static_cast<int>(n_head);
  hp.n_head_kv = static_cast<int>(n_head_kv);
  hp.head_dim = static_cast<int>(head_dim);
  hp.n_ff = static_cast<int>(n_ff);
  hp.norm_eps = static_cast<float>(f.get_float_or(key(names::kRmsEps), 1e-5));
  if (!(hp.norm_eps > 0 && hp.norm_eps < 1))
    fail(path, ": ", key(names::kRmsEps), " = ", hp.norm_eps, " is out of range (0, 1)");
  hp.n_ctx_train = f.get_int_or(key(names::kContextLength), 0);

  const GgufTensor* emb = f.tensor(names::kTokEmbd);
  if (!emb) fail(path, ": missing tensor '", names::kTokEmbd, "'");
  if (emb->ne.size() != 2 || emb->ne[0] != n_embd)
    fail(path, ": tensor '", names::kTokEmbd, "' does not have ", n_embd, " columns");
  hp.n_vocab = static_cast<int>(emb->ne[1]);
  if (hp.n_vocab < m->tok_->n_vocab())
    fail(path, ": tokenizer has ", m->tok_->n_vocab(), " tokens but '", names::kTokEmbd, "' only ",
         hp.n_vocab, " rows");

  const TensorLoader ld(f);
  ModelWeights& w = m->w_;
  w.tok_embd = ld.matrix(names::kTokEmbd, n_embd, hp.n_vocab);
  w.output_norm = ld.vec(names::kOutputNorm, n_embd);
  w.tied_output = !ld.has(names::kOutput);
  w.output = w.tied_output ? w.tok_embd : ld.matrix(names::kOutput, n_embd, hp.n_vocab);
  w.layers.resize(static_cast<size_t>(n_layer));
  for (int il = 0; il < hp.n_layer; ++il)
    spec->load_layer(ld, hp, il, w.layers[static_cast<size_t>(il)]);

  m->rope_ = rope_resolve(&f, hp.arch, hp.head_dim, spec->rope_layout, m->hf_config_, {});
  return m;
}

}  // namespace lc
