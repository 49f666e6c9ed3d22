// SentencePiece-style tokenizer (`tokenizer.ggml.model` = "llama"), as llama.cpp runs it: spaces
// become U+2581, a space is put before the text, and adjacent symbols are merged greedily by the
// score of the token they form; characters no token covers fall back to <0xXX> byte tokens.
//
// Memory: merging keeps a symbol and a candidate pair per character, so a long text is cut into
// pieces of about `chunk_bytes` where no merge can cross: between two characters that are
// adjacent in no vocabulary token (no merge can create a symbol that spans them). The result is
// the same as tokenizing the text whole; a million-token text needs a few kilobytes, not ~100 MB.
#include <algorithm>
#include <cstdlib>
#include <queue>
#include <unordered_set>

#include "core/error.h"
#include "core/gguf.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "model/tokenizer/unicode.h"

namespace lc::tok {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

class SpmTokenizer final : public TokenizerBase {
 public:
  SpmTokenizer(const GgufFile& f, size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {
    model_ = "llama";
    pre_ = f.get_str_or("tokenizer.ggml.pre", "default");
    // llama.cpp's defaults for SentencePiece vocabularies; the file's keys override them.
    bos_ = 1;
    eos_ = 2;
    unk_ = 0;
    add_bos_ = true;
    add_eos_ = false;
    add_space_prefix_ = f.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    load_common(f);

    scores_.assign(tokens_.size(), 0.0f);
    if (auto s = f.get_f32_array("tokenizer.ggml.scores")) {
      if (s->size() != tokens_.size())
        fail(f.path(), ": tokenizer.ggml.scores has ", s->size(),
             " entries but tokenizer.ggml.tokens has ", tokens_.size());
      scores_ = std::move(*s);
    }
    for (int b = 0; b < 256; ++b) {
      static const char* hex = "0123456789ABCDEF";
      const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      int32_t id = lookup(name);
      if (id < 0) id = lookup(std::string(1, static_cast<char>(b)));
      byte_ids_[b] = id;
    }
    // Character pairs that some token contains: merges may join them, so no cut between them.
    for (const std::string& t : tokens_) {
      size_t prev = std::string::npos;
      for (size_t off = 0; off < t.size();) {
        const size_t n = std::min(uni::utf8_len(static_cast<uint8_t>(t[off])), t.size() - off);
        if (prev != std::string::npos) joinable_.insert(pair_key(t, prev, off, off + n));
        prev = off;
        off += n;
      }
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() + 3);  // at most a token per byte (untouched capacity costs no RAM)
    if (add_special && add_bos_) out.push_back(bos_);
    bool prev_special = true;  // the first piece gets the space prefix, as after a special token
    for (const Fragment& fr : partition(text, parse_special)) {
      if (fr.token >= 0) {
        out.push_back(fr.token);
        prev_special = true;
        continue;
      }
      encode_text(fr.text, add_space_prefix_ && prev_special, out);
      prev_special = false;
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
  }

  std::string token_to_piece(int32_t id, bool special) const override {
    check_id(id);
    const std::string& text = tokens_[static_cast<size_t>(id)];
    switch (attrs_[static_cast<size_t>(id)]) {
      case TokenAttr::Normal: {
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
          if (text.compare(i, kSpace.size(), kSpace) == 0) {
            out += ' ';
            i += kSpace.size();
          } else {
            out += text[i++];
          }
        }
        return out;
      }
      case TokenAttr::Byte:
        if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>')
          return std::string(
              1, static_cast<char>(std::strtol(text.substr(3, 2).c_str(), nullptr, 16)));
        return text;
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
    float score;
    size_t size;
  };
  struct ByScore {  // highest score first, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  // Key of the character pair s[a, b) s[b, e) (each at most 4 bytes).
  static uint64_t pair_key(std::string_view s, size_t a, size_t b, size_t e) {
    uint64_t k = 0;
    for (size_t i = a; i < b && i < a + 4; ++i) k = (k << 8) | static_cast<uint8_t>(s[i]);
    k = (k << 3) | std::min<size_t>(b - a, 4);
    for (size_t i = b; i < e && i < b + 4; ++i) k = (k << 8) | static_cast<uint8_t>(s[i]);
    return (k << 3) | std::min<size_t>(e - b, 4);
  }

  // Spaces become U+2581 segment by segment; whatever precedes the last cut that no merge can
  // cross is merged, the rest waits for the next segment.
  void encode_text(std::string_view raw, bool space_prefix, std::vector<int32_t>& out) const {
    std::string pending;
    if (space_prefix) pending += kSpace;
    size_t i = 0;
    do {
      size_t end = chunk_bytes_ == 0 ? raw.size() : std::min(raw.size(), i + chunk_bytes_);
      while (end < raw.size() && (static_cast<uint8_t>(raw[end]) & 0xC0) == 0x80) ++end;
      for (; i < end; ++i) {
        if (raw[i] == ' ')
          pending += kSpace;
        else
          pending += raw[i];
      }
      if (i < raw.size()) {
        const size_t cut = last_cut(pending);
        if (cut > 0) {
          merge_chunk(pending.substr(0, cut), out);
          pending.erase(0, cut);
        }
      }
    } while (i < raw.size());
    merge_chunk(pending, out);
  }

  // The byte offset of the last boundary between two characters of s that no token spans
  // (0 if none).
  size_t last_cut(const std::string& s) const {
    size_t cut = 0, prev = std::string::npos;
    for (size_t off = 0; off < s.size();) {
      const size_t n = std::min(uni::utf8_len(static_cast<uint8_t>(s[off])), s.size() - off);
      if (prev != std::string::npos && joinable_.count(pair_key(s, prev, off, off + n)) == 0)
        cut = off;
      prev = off;
      off += n;
    }
    return cut;
  }

  void merge_chunk(const std::string& s, std::vector<int32_t>& out) const {
    std::vector<Symbol> sym;
    for (size_t off = 0; off < s.size();) {
      const size_t n = std::min(uni::utf8_len(static_cast<uint8_t>(s[off])), s.size() - off);
      const int idx = static_cast<int>(sym.size());
      sym.push_back({off, n, idx - 1, off + n == s.size() ? -1 : idx + 1});
      off += n;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, ByScore> queue;
    const auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const std::string_view t(s.data() + sym[left].off, sym[left].n + sym[right].n);
      const int32_t id = lookup(t);
      if (id < 0) return;
      queue.push({left, right, scores_[static_cast<size_t>(id)], t.size()});
    };
    for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) {
      const std::string_view t(s.data() + sym[i].off, sym[i].n);
      const int32_t id = lookup(t);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // Byte fallback; without byte tokens the character becomes <unk>.
      bool all_bytes = true;
      for (char c : t) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (char c : t) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
      } else if (unk_ >= 0) {
        out.push_back(unk_);
      }
    }
  }

  size_t chunk_bytes_;
  std::vector<float> scores_;
  int32_t byte_ids_[256];
  std::unordered_set<uint64_t> joinable_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& f, size_t chunk_bytes) {
  return std::make_unique<SpmTokenizer>(f, chunk_bytes);
}

}  // namespace lc::tok
