// Internal to the tokenizer folder: what the SentencePiece and BPE tokenizers share (vocabulary
// loading, special-token ids, splitting the text on special-token texts).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "model/tokenizer/tokenizer.h"

namespace lc::tok {

// A piece of the input: either a special token found in the text, or plain text to tokenize.
struct Fragment {
  int32_t token = -1;     // >= 0: this special token
  std::string_view text;  // when token < 0
};

class TokenizerBase : public Tokenizer {
 protected:
  // Reads tokens, token types, special ids, add_bos/add_eos, the chat template and works out the
  // end-of-generation set. Subclasses set model_, pre_, their default special ids and add_bos_
  // first; keys present in the file override those defaults.
  void load_common(const GgufFile& f);

  // Splits the text on the texts of special tokens (longest texts first, each splitting every
  // remaining text piece, as llama.cpp does). User-defined tokens are always recognised (as
  // Hugging Face tokenizers do); control and unknown tokens only with parse_special. ASCII
  // whitespace right after a token marked in rstrip_ is dropped.
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  int32_t lookup(std::string_view s) const {
    auto it = token_to_id_.find(s);
    return it == token_to_id_.end() ? -1 : it->second;
  }
  void check_id(int32_t id) const;

  std::vector<int32_t> special_cache_;  // control / user-defined / unknown tokens, longest first
  // Tokens that swallow the whitespace after them when found in the text. llama.cpp sets this
  // for the special tokens of models named Phi-3 (the information is not in the GGUF metadata;
  // Phi-3's Hugging Face tokenizer has rstrip on these added tokens).
  std::vector<bool> rstrip_;
};

// chunk_bytes: long texts are merged in pieces of about this many bytes, cut only where no merge
// can cross (same result as whole; bounded memory). 0 = merge every text whole.
std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& f, size_t chunk_bytes = 4096);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& f);

}  // namespace lc::tok
