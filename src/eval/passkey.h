// Passkey retrieval (docs/algorithms.md section 3): haystack construction counted in the model's
// own tokens, seeded keys, and scoring. Pure functions of a tokenizer; PasskeyEval (passkey_eval.h)
// runs them.
//
// Prompt text (N filler units, j = round(depth * N) of them before the needle):
//   context = noise*j + NEEDLE + "\n" + noise*(N-j)   with noise = NOISE + "\n"
//   infinitebench: INTRO + "\n\n" + context + "\n\n" + "What is the pass key?"
//                  (key: 5 random digits; under a chat template this is the user message and the
//                  assistant turn is opened)
//   landmark:      context + "What is the pass key? The pass key is"   (key: 1..50000), i.e. the
//                  lines joined with "\n", as llama-passkey / landmark attention build it
// NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
// With a filler text (passkey.filler) the units are its sentences and lines (each with the
// whitespace before it) instead of "NOISE\n" lines; the needle is then a line of its own in the
// running text.
//
// Tokens: every piece is tokenized once in the context of the piece before it, the prompt's ids
// are assembled from the pieces, and the assembled ids are checked against one tokenization of
// the whole text (which is what the model is given if they ever differ).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"

namespace lc::eval {

enum class PasskeyFormat { InfiniteBench, Landmark };

// "infinitebench" / "landmark"; lc::Error for anything else.
PasskeyFormat passkey_format_from_name(std::string_view name);
std::string_view passkey_format_name(PasskeyFormat f);

// The noise line of InfiniteBench (without its newline).
std::string_view passkey_noise_line();
// "The pass key is {key}. Remember it. {key} is the pass key."
std::string passkey_needle(std::string_view key);
// InfiniteBench's instruction that opens its prompt.
std::string_view passkey_intro();

// Splits a text into filler units: sentences (ending in . ! ? before whitespace, closing quotes
// and brackets kept) and lines. Each unit carries the whitespace that precedes it, so the units
// concatenated give the text back (minus leading and trailing whitespace); the first unit gets
// "\n" in front so that the text can be cycled. lc::Error when the text has no visible character.
std::vector<std::string> passkey_split_filler(std::string_view text);

// Depths: "0:1:0.1" (start:stop:step, stop included when it falls on a step), "0.5", or a
// comma-separated list of these. Every depth is in [0, 1], rounded to 1e-9; lc::Error naming the
// bad part otherwise, or for a repeated depth.
std::vector<double> parse_depths(const std::string& text);

// Reproducible per-trial randomness: the seed of one trial depends only on (seed, length, depth,
// trial), so a cell gets the same keys whichever other cells run.
uint64_t passkey_trial_seed(uint64_t seed, int64_t length, double depth, int64_t trial);

struct PasskeyDraw {
  std::string key;
  size_t first_unit = 0;  // the filler unit the haystack starts with
};
// infinitebench: 5 independent digits (leading zeros possible); landmark: 1..50000 in decimal.
// first_unit is uniform over n_units (0 when there is one).
PasskeyDraw passkey_draw(PasskeyFormat f, size_t n_units, uint64_t trial_seed);

// The first run of ASCII digits in an answer ("" when it has none).
std::string first_digit_run(std::string_view answer);
// Exact string match of first_digit_run(answer) with the key ("007" != "7"); no digits is wrong.
bool passkey_correct(std::string_view answer, std::string_view key);

struct PasskeyConfig {
  PasskeyFormat format = PasskeyFormat::Landmark;
  std::vector<std::string> filler;  // units as passkey_split_filler gives them; empty = noise line
  std::optional<ChatFormat> chat;   // render the prompt as one user message of this template
  // What joins the noise lines, the needle and the question in the landmark form: "\n" as
  // docs/algorithms.md section 3 gives it, or " " (one running paragraph, the form some small
  // models and llama.cpp's passkey example use).
  std::string separator = "\n";
};

struct PasskeyPrompt {
  std::string key;
  std::string text;          // the prompt text (BOS not included)
  std::vector<int32_t> ids;  // what the model is given: BOS (when the tokenizer adds it) + text
  int64_t needle_pos = 0;    // index in ids of the needle's first token
  int64_t needle_tokens = 0;
  int64_t filler_pos = 0;     // index in ids of the first filler (or needle) token
  int64_t filler_tokens = 0;  // tokens of the filler units, needle excluded
  int64_t filler_before = 0;  // tokens of the units before the needle
  int64_t units = 0, units_before = 0;
  size_t first_unit = 0;
  bool assembled = true;  // the ids assembled from pieces equal the tokenization of the text
};

class PasskeyBuilder {
 public:
  // lc::Error when a filler unit tokenizes to nothing.
  PasskeyBuilder(const Tokenizer& tok, PasskeyConfig cfg);

  // The prompt with the most filler units whose token count (BOS included) is <= target: within
  // one unit of the target. round(depth * units) units go before the needle. lc::Error when even
  // the prompt without filler is longer than the target.
  PasskeyPrompt build(int64_t target, double depth, const PasskeyDraw& draw);

  // Tokens of the prompt without filler for this key (BOS included).
  int64_t min_tokens(const std::string& key);

  const PasskeyConfig& config() const { return cfg_; }
  size_t n_units() const { return units_.size(); }
  // The most tokens one filler unit takes (in the context of the unit before it).
  int64_t max_unit_tokens() const { return max_unit_tokens_; }
  // Whether `text` is encoded with special-token parsing (under a chat template).
  bool parse_special() const { return special_; }
  // BOS (when the tokenizer adds one) + the tokens of text.
  std::vector<int32_t> tokenize(std::string_view text) const;

 private:
  // One piece of a prompt: literal text with its in-context ids, or (run) `units` cyclic filler
  // units from `start`, each in the context of the unit before it.
  struct Part {
    enum Kind { Bos, Head, Unit, Needle, Tail } kind = Unit;
    std::string text;
    std::vector<int32_t> ids;
    size_t start = 0;
    int64_t units = 0;
    bool run = false;
  };
  // Character offsets in the text: the filler, the needle, its end, the tail.
  struct Offsets {
    size_t filler = 0, needle = 0, needle_end = 0, tail = 0;
  };
  std::vector<Part> plan(int64_t n_units, double depth, size_t first, const std::string& needle);
  int64_t plan_tokens(const std::vector<Part>& parts) const;
  int64_t run_tokens(size_t start, int64_t count) const;
  PasskeyPrompt assemble(const std::vector<Part>& parts, const PasskeyDraw& draw,
                         Offsets* offsets) const;
  // ids of `cur` as it is tokenized right after `prev` (prev empty: at the start of the text).
  std::vector<int32_t> after(const std::string& prev, const std::string& cur);
  // Memoised after() for pieces named by code (unit u: u; unit u lstripped: U + u; head: 2U;
  // tail: 2U + 1).
  const std::vector<int32_t>& after_code(int64_t prev, int64_t cur);
  const std::string& code_text(int64_t code) const;

  const Tokenizer& tok_;
  PasskeyConfig cfg_;
  bool special_ = false;
  std::vector<std::string> units_;
  std::vector<std::string> first_texts_;  // unit u opening the haystack: lead_ + unit stripped
  std::string head_, lead_, tail_;        // lead_: whitespace between the head and the first piece
  std::vector<int32_t> head_ids_;
  std::vector<std::vector<int32_t>> unit_ids_;  // unit u after unit u-1 (cyclic)
  std::vector<int64_t> prefix_;                 // prefix sums of unit_ids_ sizes
  int64_t max_unit_tokens_ = 0;
  std::map<std::pair<int64_t, int64_t>, std::vector<int32_t>> memo_;
};

}  // namespace lc::eval
