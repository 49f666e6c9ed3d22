// Byte-level BPE tokenizer (`tokenizer.ggml.model` = "gpt2"): the text is cut into words by the
// pre-tokenizer of `tokenizer.ggml.pre`, each word's bytes are written with the GPT-2
// byte-to-unicode mapping, and adjacent symbols are merged by the rank of their pair in
// `tokenizer.ggml.merges` (lowest rank first), as llama.cpp does. A Hugging Face folder whose
// pre-tokenizer is of no known family gives its regexes in `tokenizer.hf.pre_regexes`.
#include <algorithm>
#include <queue>

#include "core/error.h"
#include "core/gguf.h"
#include "model/tokenizer/pretokenize.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "model/tokenizer/unicode.h"

namespace lc::tok {

namespace {

class BpeTokenizer final : public TokenizerBase {
 public:
  explicit BpeTokenizer(const GgufFile& f) {
    model_ = "gpt2";
    pre_ = f.get_str_or("tokenizer.ggml.pre", "default");
    PreTokenizerInfo info;
    if (auto rx = f.get_str_array("tokenizer.hf.pre_regexes")) {
      // A Hugging Face tokenizer.json pre-tokenizer of no llama.cpp family: its own regexes.
      info.name = pre_;
      info.regexes = std::move(*rx);
      info.ignore_merges = f.get_bool_or("tokenizer.hf.ignore_merges", false);
      info.clean_spaces = false;
    } else {
      info = pretokenizer_info(pre_);
    }
    pre_ = info.name;
    ignore_merges_ = info.ignore_merges;
    clean_spaces_ = info.clean_spaces;
    add_space_prefix_ = false;
    add_bos_ = info.add_bos;
    add_eos_ = false;
    load_common(f);
    pretok_ = std::make_unique<PreTokenizer>(info.regexes);

    auto merges = f.get_str_array("tokenizer.ggml.merges");
    if (!merges) fail(f.path(), ": missing tokenizer.ggml.merges (needed by a 'gpt2' tokenizer)");
    ranks_.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const std::string& m = (*merges)[i];
      // "left right"; the separator is the first space after the first byte.
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos) continue;  // a malformed entry cannot match any pair
      ranks_.try_emplace(m, static_cast<int32_t>(i));
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_special && add_bos_) out.push_back(bos_);
    for (const Fragment& fr : partition(text, parse_special)) {
      if (fr.token >= 0)
        out.push_back(fr.token);
      else
        tokenize_piece(fr.text, out);
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
  }

  std::string token_to_piece(int32_t id, bool special) const override {
    check_id(id);
    const std::string& text = tokens_[static_cast<size_t>(id)];
    switch (attrs_[static_cast<size_t>(id)]) {
      case TokenAttr::Normal:
      case TokenAttr::Byte: {
        std::string out;
        out.reserve(text.size());
        for (uint32_t cp : uni::decode_utf8_lossy(text)) {
          const int b = uni::unicode_to_byte(cp);
          if (b >= 0)
            out += static_cast<char>(b);
          else
            uni::append_utf8(out, cp);  // not part of the byte mapping: keep it as it is
        }
        return out;
      }
      case TokenAttr::UserDefined:
        return text;
      case TokenAttr::Control:
      case TokenAttr::Unknown:
        return special ? text : std::string();
      case TokenAttr::Unused:
        return std::string();
    }
    return std::string();
  }

 private:
  struct Symbol {
    size_t off, n;
    int prev, next;
  };
  struct Bigram {
    int left, right;
    int32_t rank;
    std::string text;
  };
  struct ByRank {  // lowest rank first, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };

  void tokenize_piece(std::string_view raw, std::vector<int32_t>& out) const {
    // Invalid UTF-8 becomes U+FFFD before the regexes see it (llama.cpp does the same).
    const std::string text = uni::encode_utf8(uni::decode_utf8_lossy(raw));
    std::string word, key;
    for (std::string_view w : pretok_->split(text)) {
      word.clear();
      for (char c : w) word += uni::byte_to_unicode(static_cast<uint8_t>(c));
      if (ignore_merges_) {
        const int32_t id = lookup(word);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
      }
      std::vector<Symbol> sym;
      for (size_t off = 0; off < word.size();) {
        const size_t n =
            std::min(uni::utf8_len(static_cast<uint8_t>(word[off])), word.size() - off);
        const int idx = static_cast<int>(sym.size());
        sym.push_back({off, n, idx - 1, off + n == word.size() ? -1 : idx + 1});
        off += n;
      }
      std::priority_queue<Bigram, std::vector<Bigram>, ByRank> queue;
      const auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const std::string_view l(word.data() + sym[left].off, sym[left].n);
        const std::string_view r(word.data() + sym[right].off, sym[right].n);
        key.assign(l);
        key += ' ';
        key += r;
        auto it = ranks_.find(key);
        if (it == ranks_.end()) return;
        queue.push({left, right, it->second, std::string(l) + std::string(r)});
      };
      for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
      while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& l = sym[b.left];
        Symbol& r = sym[b.right];
        if (l.n == 0 || r.n == 0) continue;
        // Stale when either side changed since the pair was queued.
        if (l.n + r.n != b.text.size() || word.compare(l.off, b.text.size(), b.text) != 0 ||
            r.off != l.off + l.n)
          continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
      }
      for (const Symbol& s : sym) {
        if (s.n == 0) continue;
        const std::string_view t(word.data() + s.off, s.n);
        const int32_t id = lookup(t);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
        // No token for the merged text: emit whatever single bytes of it are tokens.
        for (char c : t) {
          const int32_t bid = lookup(std::string_view(&c, 1));
          if (bid >= 0) out.push_back(bid);
        }
      }
    }
  }

  std::unique_ptr<PreTokenizer> pretok_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ranks_;
  bool ignore_merges_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& f) {
  return std::make_unique<BpeTokenizer>(f);
}

}  // namespace lc::tok
