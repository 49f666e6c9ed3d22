// The tokenizer factory, what both tokenizer kinds share (vocabulary, special tokens, splitting on
// special-token texts), decoding and the streaming decoder.
#include "model/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/gguf.h"
#include "model/tokenizer/tokenizer_impl.h"
#include "model/tokenizer/unicode.h"

namespace lc {

namespace tok {

void TokenizerBase::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    fail("token id ", id, " is out of range (the vocabulary has ", n_vocab(), " tokens)");
}

void TokenizerBase::load_common(const GgufFile& f) {
  const std::string& file = f.path();
  auto toks = f.get_str_array("tokenizer.ggml.tokens");
  if (!toks) fail(file, ": missing tokenizer.ggml.tokens");
  if (toks->empty()) fail(file, ": tokenizer.ggml.tokens is empty");
  if (toks->size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail(file, ": tokenizer.ggml.tokens has too many entries (", toks->size(), ")");
  tokens_ = std::move(*toks);
  const size_t n = tokens_.size();

  attrs_.assign(n, TokenAttr::Normal);
  if (auto types = f.get_i32_array("tokenizer.ggml.token_type")) {
    if (types->size() != n)
      fail(file, ": tokenizer.ggml.token_type has ", types->size(),
           " entries but tokenizer.ggml.tokens has ", n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = (*types)[i];
      if (t < 0 || t > static_cast<int32_t>(TokenAttr::Byte))
        fail(file, ": tokenizer.ggml.token_type[", i, "] = ", t, " is not a token type (0-6)");
      // 0 (undefined) is treated as a normal token.
      attrs_[i] = t == 0 ? TokenAttr::Normal : static_cast<TokenAttr>(t);
    }
  }

  token_to_id_.clear();
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) token_to_id_[tokens_[i]] = static_cast<int32_t>(i);

  // Special ids: a value outside the vocabulary (converters write 0xFFFFFFFF for "none") keeps
  // the default.
  const auto read_id = [&](const char* key, int32_t& id) {
    if (auto v = f.get_int(key)) {
      if (*v >= 0 && *v < static_cast<int64_t>(n)) id = static_cast<int32_t>(*v);
    }
  };
  read_id("tokenizer.ggml.bos_token_id", bos_);
  read_id("tokenizer.ggml.eos_token_id", eos_);
  read_id("tokenizer.ggml.unknown_token_id", unk_);
  read_id("tokenizer.ggml.padding_token_id", pad_);
  read_id("tokenizer.ggml.eot_token_id", eot_);
  read_id("tokenizer.ggml.eom_token_id", eom_);
  for (int32_t* id : {&bos_, &eos_, &unk_, &pad_, &eot_, &eom_})
    if (*id >= static_cast<int32_t>(n)) *id = -1;

  add_bos_ = f.get_bool_or("tokenizer.ggml.add_bos_token", add_bos_);
  add_eos_ = f.get_bool_or("tokenizer.ggml.add_eos_token", add_eos_);
  if (add_bos_ && bos_ < 0)
    fail(file, ": tokenizer.ggml.add_bos_token is set but the file has no usable ",
         "tokenizer.ggml.bos_token_id");
  if (add_eos_ && eos_ < 0)
    fail(file, ": tokenizer.ggml.add_eos_token is set but the file has no usable ",
         "tokenizer.ggml.eos_token_id");
  chat_template_ = f.get_str_or("tokenizer.chat_template", "");

  const auto control_named = [&](std::string_view text) {
    const int32_t id = lookup(text);
    return id >= 0 && attrs_[static_cast<size_t>(id)] == TokenAttr::Control ? id : -1;
  };
  if (eot_ < 0) {
    for (std::string_view t : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"}) {
      if ((eot_ = control_named(t)) >= 0) break;
    }
  }
  eog_.clear();
  for (int32_t id : {eos_, eot_, eom_})
    if (id >= 0) eog_.push_back(id);
  for (std::string_view t : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                             "<|endoftext|>", "</s>"}) {
    const int32_t id = control_named(t);
    if (id >= 0) eog_.push_back(id);
  }
  std::sort(eog_.begin(), eog_.end());
  eog_.erase(std::unique(eog_.begin(), eog_.end()), eog_.end());

  special_cache_.clear();
  for (size_t i = 0; i < n; ++i) {
    const TokenAttr a = attrs_[i];
    if ((a == TokenAttr::Control || a == TokenAttr::UserDefined || a == TokenAttr::Unknown) &&
        !tokens_[i].empty())
      special_cache_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(special_cache_.begin(), special_cache_.end(), [&](int32_t a, int32_t b) {
    return tokens_[static_cast<size_t>(a)].size() > tokens_[static_cast<size_t>(b)].size();
  });

  rstrip_.assign(n, false);
  std::string name = f.get_str_or("general.name", "");
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : special_cache_) rstrip_[static_cast<size_t>(id)] = true;
    const auto set = [&](std::string_view t, bool v) {
      const int32_t id = lookup(t);
      if (id >= 0) rstrip_[static_cast<size_t>(id)] = v;
    };
    set("</s>", true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, false);
  }
}

std::vector<Fragment> TokenizerBase::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  std::vector<Fragment> next;
  for (int32_t id : special_cache_) {
    const TokenAttr a = attrs_[static_cast<size_t>(id)];
    if (!parse_special && (a == TokenAttr::Control || a == TokenAttr::Unknown)) continue;
    const std::string& t = tokens_[static_cast<size_t>(id)];
    bool found = false;
    for (const Fragment& fr : frags) {
      if (fr.token < 0 && fr.text.find(t) != std::string_view::npos) {
        found = true;
        break;
      }
    }
    if (!found) continue;
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      const bool rstrip = rstrip_[static_cast<size_t>(id)];
      size_t start = 0, m;
      while ((m = fr.text.find(t, start)) != std::string_view::npos) {
        if (m > start) next.push_back({-1, fr.text.substr(start, m - start)});
        next.push_back({id, {}});
        start = m + t.size();
        while (rstrip && start < fr.text.size() &&
               std::isspace(static_cast<unsigned char>(fr.text[start])))
          ++start;
      }
      if (start < fr.text.size()) next.push_back({-1, fr.text.substr(start)});
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace tok

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const std::optional<std::string> model = f.get_str("tokenizer.ggml.model");
  if (!model) fail(f.path(), ": missing tokenizer.ggml.model (the file has no tokenizer)");
  if (*model == "llama") return tok::make_spm_tokenizer(f);
  if (*model == "gpt2") return tok::make_bpe_tokenizer(f);
  fail(f.path(), ": unknown tokenizer model '", *model,
       "' (tokenizer.ggml.model); supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE)");
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(eog_.begin(), eog_.end(), id);
}

namespace {

// llama.cpp's version of the Hugging Face space clean-up: " ?", " !", " .", " ," lose the space;
// " ' " loses both; " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
std::string clean_up_spaces(const std::string& in) {
  if (in.size() < 2) return in;
  // Pass 1: a space before ?!.,
  std::string a;
  a.reserve(in.size());
  a += in[0];
  for (size_t i = 1; i < in.size(); ++i) {
    const char x = in[i];
    if (in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  // Pass 2: " ' " -> "'". The skipped space no longer counts as the left neighbour of what
  // follows it.
  std::string b;
  b.reserve(a.size());
  b += a[0];
  bool skipped = false;
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    const bool prev_space = a[i - 1] == ' ' && !skipped;
    skipped = false;
    if (x == '\'' && i + 1 < a.size() && prev_space && a[i + 1] == ' ') {
      b.pop_back();
      b += x;
      ++i;
      skipped = true;
      continue;
    }
    b += x;
  }
  if (b.size() < 2) return b;
  // Pass 3: contractions.
  std::string c;
  c.reserve(b.size());
  c += b[0];
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') {
        c.pop_back();
      } else if (x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
        const char x2 = b[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
      }
    }
    c += x;
  }
  return c;
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  bool strip = add_space_prefix_;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], special);
    // A leading BOS that renders as nothing does not use up the removal of the prefix space.
    if (i == 0 && ids[i] == bos_ && piece.empty()) continue;
    if (strip && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip = false;
    out += piece;
  }
  return clean_spaces_ ? clean_up_spaces(out) : out;
}

size_t utf8_complete_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 1;
    if (uni::utf8_classify(s, i, len) == uni::Utf8Status::Incomplete) return i;
    i += len;
  }
  return i;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_to_piece(id);
  const size_t n = utf8_complete_prefix(pending_);
  std::string out = uni::sanitize_utf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = uni::sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace lc
