// Tokenizers built from GGUF `tokenizer.*` metadata: SentencePiece-style (model "llama") and
// byte-level BPE (model "gpt2", with the pre-tokenizer given by `tokenizer.ggml.pre`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lc {

class GgufFile;

enum class TokenAttr : uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Throws lc::Error when the metadata is missing or inconsistent (names the key).
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);

  // add_special: prepend BOS / append EOS as the model's add_bos/add_eos flags say.
  // parse_special: recognise control token texts (e.g. "<|im_start|>") in the text. Texts of
  // user-defined tokens are always recognised (as llama.cpp and Hugging Face tokenizers do).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special = false) const = 0;
  // The bytes a token stands for (byte tokens -> their byte, SPM "▁" -> space, BPE byte-level
  // unicode -> raw bytes). Control tokens give "" unless `special` is set.
  virtual std::string token_to_piece(int32_t id, bool special = false) const = 0;
  std::string decode(const std::vector<int32_t>& ids, bool special = false) const;

  const std::string& model_name() const { return model_; }  // "llama", "gpt2"
  const std::string& pre_name() const { return pre_; }      // "default", "llama3", ...
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenAttr attr(int32_t id) const { return attrs_.at(static_cast<size_t>(id)); }

  int32_t bos() const { return bos_; }  // -1 when the model has none
  int32_t eos() const { return eos_; }
  int32_t eot() const { return eot_; }
  int32_t eom() const { return eom_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  // The id of the token whose text is exactly `text` (the last one if several), or -1.
  int32_t find_token(std::string_view text) const;
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool is_eog(int32_t id) const;  // end of generation: eos, eot, eom and the like
  const std::vector<int32_t>& eog_ids() const { return eog_; }

  const std::string& chat_template() const { return chat_template_; }  // "" if none

 protected:
  std::string model_, pre_;
  std::vector<std::string> tokens_;
  std::vector<TokenAttr> attrs_;
  int32_t bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1, pad_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<int32_t> eog_;
  std::string chat_template_;
  int32_t eom_ = -1;
  // SPM: a space is put before the text when encoding, and decode() removes it again from the
  // first piece (after a leading BOS that renders empty).
  bool add_space_prefix_ = false;
  // BPE (GPT-2 style): decode() applies the Hugging Face clean-up of spaces before punctuation
  // and contractions (" ," -> ",", " 's" -> "'s"), as llama.cpp does for these vocabularies.
  bool clean_spaces_ = false;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
};

// Incremental decoder for streaming: returns only complete UTF-8 characters; keeps the rest. What
// it returns is always valid UTF-8 (ill-formed bytes become U+FFFD). Pieces are token_to_piece()
// with special = false, so the first piece keeps its leading space.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string finish();  // whatever is left (invalid trailing bytes become U+FFFD)

 private:
  const Tokenizer& tok_;
  std::string pending_;
};

// Length of the longest prefix of s made of complete UTF-8 sequences (an incomplete tail is held).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace lc
