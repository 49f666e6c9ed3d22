// Pre-tokenizers of byte-level BPE vocabularies: the text is cut into words by a sequence of
// Unicode regexes (PCRE2, UTF + UCP) chosen by `tokenizer.ggml.pre`, as llama.cpp does. Each regex
// of the sequence cuts every piece left by the previous one: matches and the gaps between them
// both become pieces, and a regex only ever sees one piece (lookarounds stop at its edges).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lc {

struct PreTokenizerInfo {
  std::string name;                  // as given in the file ("" -> "default")
  std::vector<std::string> regexes;  // applied in order
  bool ignore_merges = false;        // a word that is itself a token is taken whole (llama3)
  bool add_bos = false;              // the family adds BOS unless add_bos_token says otherwise
  bool clean_spaces = true;          // decode removes " ," / " 's" style spaces (HF clean-up)
};

// Throws lc::Error for a name it does not know (the message names it and lists known ones).
PreTokenizerInfo pretokenizer_info(std::string_view pre);

class PreTokenizer {
 public:
  explicit PreTokenizer(const std::vector<std::string>& regexes);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // `text` must be valid UTF-8. Returns the words in order; they concatenate to `text`.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> res_;
};

}  // namespace lc
