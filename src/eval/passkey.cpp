#include "eval/passkey.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>

#include "core/error.h"

namespace lc::eval {

namespace {

constexpr std::string_view kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
constexpr std::string_view kIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "them. I will quiz you about the important information there.";
constexpr std::string_view kQuestion = "What is the pass key?";
constexpr std::string_view kAnswerPrefix = " The pass key is";
// Stands for the user message while the chat template is rendered.
constexpr std::string_view kContentMark = "\x1fPASSKEY-CONTENT\x1f";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

std::string lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  return std::string(s.substr(i));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A small counter-based generator: the same numbers on every platform.
class TrialRng {
 public:
  explicit TrialRng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++); }
  // Uniform in [0, n) by rejection (no modulo bias).
  uint64_t below(uint64_t n) {
    LC_CHECK(n > 0);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
      const uint64_t x = next();
      if (x < limit) return x % n;
    }
  }

 private:
  uint64_t state_;
};

double parse_depth_number(std::string_view s, const std::string& whole) {
  const std::string t(trim(s));
  char* end = nullptr;
  const double v = t.empty() ? NAN : std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v))
    fail_setting({"passkey.depths"}, "passkey.depths '", whole, "': '", t,
                 "' is not a number (expected e.g. 0:1:0.1 or 0,0.5,1)");
  return v;
}

double round_depth(double v) { return std::round(v * 1e9) / 1e9; }

}  // namespace

PasskeyFormat passkey_format_from_name(std::string_view name) {
  if (name == "infinitebench") return PasskeyFormat::InfiniteBench;
  if (name == "landmark") return PasskeyFormat::Landmark;
  fail_setting({"passkey.format"}, "unknown passkey format '", name,
               "' (expected: infinitebench, landmark)");
}

std::string_view passkey_format_name(PasskeyFormat f) {
  return f == PasskeyFormat::InfiniteBench ? "infinitebench" : "landmark";
}

std::string_view passkey_noise_line() { return kNoise; }
std::string_view passkey_intro() { return kIntro; }

std::string passkey_needle(std::string_view key) {
  return cat("The pass key is ", key, ". Remember it. ", key, " is the pass key.");
}

std::vector<std::string> passkey_split_filler(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.empty()) fail("the filler text is empty (it needs at least one visible character)");
  std::vector<std::string> units;
  size_t start = 0;
  for (size_t i = 0; i < t.size();) {
    if (!is_space(t[i])) {
      ++i;
      continue;
    }
    size_t k = i;
    bool newline = false;
    for (; k < t.size() && is_space(t[k]); ++k)
      if (t[k] == '\n') newline = true;
    // Does a sentence end just before the whitespace? Skip closing quotes and brackets.
    size_t e = i;
    while (e > start && (t[e - 1] == '"' || t[e - 1] == '\'' || t[e - 1] == ')' || t[e - 1] == ']'))
      --e;
    const bool sentence_end = e > start && (t[e - 1] == '.' || t[e - 1] == '!' || t[e - 1] == '?');
    if (newline || sentence_end) {
      units.emplace_back(t.substr(start, i - start));
      start = i;  // the whitespace opens the next unit
    }
    i = k;
  }
  units.emplace_back(t.substr(start));
  units[0] = "\n" + units[0];
  return units;
}

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> out;
  auto add = [&](double v) {
    v = round_depth(v);
    if (v < 0 || v > 1)
      fail_setting({"passkey.depths"}, "passkey.depths '", text, "': depth ", v,
                   " is outside [0, 1]");
    for (double d : out)
      if (d == v)
        fail_setting({"passkey.depths"}, "passkey.depths '", text, "': depth ", v,
                     " is given twice");
    out.push_back(v);
  };
  size_t pos = 0;
  for (;;) {
    const size_t comma = text.find(',', pos);
    const std::string_view item =
        std::string_view(text).substr(pos, comma == std::string::npos ? comma : comma - pos);
    const size_t c1 = item.find(':');
    if (c1 == std::string_view::npos) {
      add(parse_depth_number(item, text));
    } else {
      const size_t c2 = item.find(':', c1 + 1);
      if (c2 == std::string_view::npos || item.find(':', c2 + 1) != std::string_view::npos)
        fail_setting({"passkey.depths"}, "passkey.depths '", text, "': '", trim(item),
                     "' should be start:stop:step");
      const double a = parse_depth_number(item.substr(0, c1), text);
      const double b = parse_depth_number(item.substr(c1 + 1, c2 - c1 - 1), text);
      const double step = parse_depth_number(item.substr(c2 + 1), text);
      if (step <= 0)
        fail_setting({"passkey.depths"}, "passkey.depths '", text, "': the step must be positive");
      if (b < a)
        fail_setting({"passkey.depths"}, "passkey.depths '", text, "': stop ", b,
                     " is below start ", a);
      const auto n = static_cast<int64_t>(std::floor((b - a) / step + 1e-9));
      if (n > 100000)
        fail_setting({"passkey.depths"}, "passkey.depths '", text, "': more than 100000 depths");
      for (int64_t i = 0; i <= n; ++i) add(a + static_cast<double>(i) * step);
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

uint64_t passkey_trial_seed(uint64_t seed, int64_t length, double depth, int64_t trial) {
  const auto depth_key = static_cast<uint64_t>(std::llround(round_depth(depth) * 1e9));
  uint64_t h = splitmix64(seed ^ 0x70A55E1DC0FFEEull);
  h = splitmix64(h ^ static_cast<uint64_t>(length));
  h = splitmix64(h ^ depth_key);
  return splitmix64(h ^ static_cast<uint64_t>(trial));
}

PasskeyDraw passkey_draw(PasskeyFormat f, size_t n_units, uint64_t trial_seed) {
  TrialRng rng(trial_seed);
  PasskeyDraw d;
  if (f == PasskeyFormat::InfiniteBench) {
    for (int i = 0; i < 5; ++i) d.key += static_cast<char>('0' + rng.below(10));
  } else {
    d.key = std::to_string(1 + rng.below(50000));
  }
  d.first_unit = n_units > 1 ? static_cast<size_t>(rng.below(n_units)) : 0;
  return d;
}

std::string first_digit_run(std::string_view answer) {
  size_t i = 0;
  while (i < answer.size() && !(answer[i] >= '0' && answer[i] <= '9')) ++i;
  size_t k = i;
  while (k < answer.size() && answer[k] >= '0' && answer[k] <= '9') ++k;
  return std::string(answer.substr(i, k - i));
}

bool passkey_correct(std::string_view answer, std::string_view key) {
  const std::string got = first_digit_run(answer);
  return !got.empty() && got == key;
}

// ---------------------------------------------------------------------------------------------
// PasskeyBuilder

PasskeyBuilder::PasskeyBuilder(const Tokenizer& tok, PasskeyConfig cfg)
    : tok_(tok), cfg_(std::move(cfg)) {
  special_ = cfg_.chat.has_value();
  if (cfg_.separator.empty() || !trim(cfg_.separator).empty())
    fail("the passkey separator must be whitespace, got '", cfg_.separator, "'");
  const std::string& sep = cfg_.separator;
  units_ = cfg_.filler.empty() ? std::vector<std::string>{sep + std::string(kNoise)} : cfg_.filler;
  std::string pre, post;
  if (cfg_.chat) {
    const std::string r =
        apply_chat_template(*cfg_.chat, {{"user", std::string(kContentMark)}}, true);
    const size_t at = r.find(kContentMark);
    LC_CHECK(at != std::string::npos && r.find(kContentMark, at + 1) == std::string::npos);
    pre = r.substr(0, at);
    post = r.substr(at + kContentMark.size());
  }
  std::string head = pre;
  if (cfg_.format == PasskeyFormat::InfiniteBench) {
    head += std::string(kIntro) + "\n\n";
    tail_ = "\n\n\n" + std::string(kQuestion) + post;
  } else {
    tail_ = sep + std::string(kQuestion) + std::string(kAnswerPrefix) + post;
  }
  // No piece ends in whitespace (byte-level BPE splits whitespace by what follows it): the head's
  // trailing whitespace opens the first piece after it.
  size_t e = head.size();
  while (e > 0 && is_space(head[e - 1])) --e;
  head_ = head.substr(0, e);
  lead_ = head.substr(e);
  for (const auto& u : units_) {
    if (trim(u).empty()) fail("a filler unit is empty");
    first_texts_.push_back(lead_ + lstrip(u));
  }
  head_ids_ = after("", head_);
  const size_t U = units_.size();
  prefix_.assign(U + 1, 0);
  for (size_t u = 0; u < U; ++u) {
    unit_ids_.push_back(after(units_[(u + U - 1) % U], units_[u]));
    const auto n = static_cast<int64_t>(unit_ids_.back().size());
    if (n == 0) fail("filler unit ", u + 1, " gives no tokens: '", first_texts_[u], "'");
    prefix_[u + 1] = prefix_[u] + n;
    max_unit_tokens_ = std::max(max_unit_tokens_, n);
  }
}

std::vector<int32_t> PasskeyBuilder::tokenize(std::string_view text) const {
  std::vector<int32_t> ids;
  if (tok_.add_bos() && tok_.bos() >= 0) ids.push_back(tok_.bos());
  const std::vector<int32_t> t = tok_.encode(text, false, special_);
  ids.insert(ids.end(), t.begin(), t.end());
  return ids;
}

std::vector<int32_t> PasskeyBuilder::after(const std::string& prev, const std::string& cur) {
  if (prev.empty()) return tok_.encode(cur, false, special_);
  const std::vector<int32_t> a = tok_.encode(prev, false, special_);
  const std::vector<int32_t> b = tok_.encode(prev + cur, false, special_);
  // When a token spans the boundary, the ids after the common prefix are not cur's alone; the
  // check against the whole text in build() then catches it.
  size_t k = 0;
  while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
  return std::vector<int32_t>(b.begin() + static_cast<std::ptrdiff_t>(k), b.end());
}

const std::string& PasskeyBuilder::code_text(int64_t code) const {
  const auto U = static_cast<int64_t>(units_.size());
  if (code < U) return units_[static_cast<size_t>(code)];
  if (code < 2 * U) return first_texts_[static_cast<size_t>(code - U)];
  return code == 2 * U ? head_ : tail_;
}

const std::vector<int32_t>& PasskeyBuilder::after_code(int64_t prev, int64_t cur) {
  auto [it, fresh] = memo_.try_emplace({prev, cur});
  if (fresh) it->second = after(code_text(prev), code_text(cur));
  return it->second;
}

int64_t PasskeyBuilder::run_tokens(size_t start, int64_t count) const {
  const auto U = static_cast<int64_t>(units_.size());
  const auto s = static_cast<int64_t>(start % units_.size());
  const int64_t full = count / U, rem = count % U;
  int64_t n = full * prefix_[static_cast<size_t>(U)];
  if (s + rem <= U)
    n += prefix_[static_cast<size_t>(s + rem)] - prefix_[static_cast<size_t>(s)];
  else
    n += prefix_[static_cast<size_t>(U)] - prefix_[static_cast<size_t>(s)] +
         prefix_[static_cast<size_t>(s + rem - U)];
  return n;
}

std::vector<PasskeyBuilder::Part> PasskeyBuilder::plan(int64_t n_units, double depth, size_t first,
                                                       const std::string& needle) {
  const size_t U = units_.size();
  const auto iU = static_cast<int64_t>(U);
  const int64_t head_code = 2 * iU, tail_code = 2 * iU + 1;
  const int64_t j = std::llround(depth * static_cast<double>(n_units));
  auto unit_at = [&](int64_t k) { return (first + static_cast<size_t>(k)) % U; };
  std::vector<Part> parts;
  auto add = [&](Part::Kind kind, std::string text, std::vector<int32_t> ids) {
    Part p;
    p.kind = kind;
    p.text = std::move(text);
    p.ids = std::move(ids);
    p.units = kind == Part::Unit ? 1 : 0;
    parts.push_back(std::move(p));
  };
  auto add_run = [&](size_t start, int64_t count) {
    if (count <= 0) return;
    Part p;
    p.kind = Part::Unit;
    p.start = start;
    p.units = count;
    p.run = true;
    parts.push_back(std::move(p));
  };

  std::vector<int32_t> bos;
  if (tok_.add_bos() && tok_.bos() >= 0) bos.push_back(tok_.bos());
  add(Part::Bos, "", bos);
  add(Part::Head, head_, head_ids_);
  // The text before the needle ends with the head, the first unit or a unit of the run.
  std::string prev_text = head_;
  if (j > 0) {
    const size_t u = unit_at(0);
    add(Part::Unit, first_texts_[u],
        head_.empty() ? tok_.encode(first_texts_[u], false, special_)
                      : after_code(head_code, iU + static_cast<int64_t>(u)));
    add_run(unit_at(1), j - 1);
    prev_text = j > 1 ? units_[unit_at(j - 1)] : first_texts_[u];
  }
  // The needle starts the haystack or a new line.
  const std::string needle_text = j == 0 ? lead_ + needle : cfg_.separator + needle;
  add(Part::Needle, needle_text, after(prev_text, needle_text));
  if (n_units > j) {
    const size_t u = unit_at(j);
    add(Part::Unit, units_[u], after(needle_text, units_[u]));
    add_run(unit_at(j + 1), n_units - j - 1);
    add(Part::Tail, tail_, after_code(static_cast<int64_t>(unit_at(n_units - 1)), tail_code));
  } else {
    add(Part::Tail, tail_, after(needle_text, tail_));
  }
  return parts;
}

int64_t PasskeyBuilder::plan_tokens(const std::vector<Part>& parts) const {
  int64_t n = 0;
  for (const Part& p : parts)
    n += p.run ? run_tokens(p.start, p.units) : static_cast<int64_t>(p.ids.size());
  return n;
}

PasskeyPrompt PasskeyBuilder::assemble(const std::vector<Part>& parts, const PasskeyDraw& draw,
                                       Offsets* offsets) const {
  PasskeyPrompt p;
  p.key = draw.key;
  p.first_unit = draw.first_unit % units_.size();
  p.ids.reserve(static_cast<size_t>(plan_tokens(parts)));
  bool before_needle = true;
  for (const Part& part : parts) {
    const auto pos = static_cast<int64_t>(p.ids.size());
    const size_t chars = p.text.size();
    if (part.kind == Part::Needle) {
      p.needle_pos = pos;
      before_needle = false;
      if (offsets) offsets->needle = chars;
    }
    if (part.kind == Part::Tail && offsets) offsets->tail = chars;
    if (part.run) {
      for (int64_t k = 0; k < part.units; ++k) {
        const size_t u = (part.start + static_cast<size_t>(k)) % units_.size();
        p.text += units_[u];
        p.ids.insert(p.ids.end(), unit_ids_[u].begin(), unit_ids_[u].end());
      }
    } else {
      p.text += part.text;
      p.ids.insert(p.ids.end(), part.ids.begin(), part.ids.end());
    }
    const auto added = static_cast<int64_t>(p.ids.size()) - pos;
    if (part.kind == Part::Head) p.filler_pos = pos + added;
    if (part.kind == Part::Needle) {
      p.needle_tokens = added;
      if (offsets) offsets->needle_end = p.text.size();
    }
    if (part.kind == Part::Unit) {
      p.units += part.units;
      p.filler_tokens += added;
      if (before_needle) {
        p.units_before += part.units;
        p.filler_before += added;
      }
    }
  }
  if (offsets) offsets->filler = head_.size();
  return p;
}

int64_t PasskeyBuilder::min_tokens(const std::string& key) {
  return plan_tokens(plan(0, 0, 0, passkey_needle(key)));
}

PasskeyPrompt PasskeyBuilder::build(int64_t target, double depth, const PasskeyDraw& draw) {
  if (depth < 0 || depth > 1) fail("passkey depth ", depth, " is outside [0, 1]");
  const std::string needle = passkey_needle(draw.key);
  const size_t first = draw.first_unit % units_.size();
  auto too_short = [&](int64_t least) {
    fail("length ", target, " is too short for a passkey prompt: without any filler it takes ",
         least, " tokens");
  };
  // Tokens with n units, from the piece counts (no text is built).
  auto planned = [&](int64_t n) { return plan_tokens(plan(n, depth, first, needle)); };
  // The largest unit count that fits: grow, bisect, then step (the count is monotone but for the
  // few tokens by which the needle's neighbours change).
  auto largest_fit = [&](const std::function<int64_t(int64_t)>& tokens, int64_t guess) {
    int64_t lo = 0, hi = 0;
    if (tokens(guess) <= target) {
      lo = guess;
      for (int64_t step = 1;; step *= 2) {
        hi = lo + step;
        if (tokens(hi) > target) break;
        lo = hi;
      }
    } else {
      hi = guess;
      for (int64_t step = 1;; step *= 2) {
        lo = std::max<int64_t>(0, hi - step);
        if (tokens(lo) <= target) break;
        if (lo == 0) too_short(tokens(0));
        hi = lo;
      }
    }
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (tokens(mid) <= target ? lo : hi) = mid;
    }
    while (tokens(lo + 1) <= target) ++lo;
    return lo;
  };
  if (planned(0) > target) too_short(planned(0));
  const int64_t avg = std::max<int64_t>(1, prefix_.back() / static_cast<int64_t>(units_.size()));
  int64_t n = largest_fit(planned, std::max<int64_t>(0, (target - planned(0)) / avg));
  PasskeyPrompt p = assemble(plan(n, depth, first, needle), draw, nullptr);

  // The whole text tokenized at once is what counts. For SentencePiece, and for BPE with whole
  // lines or sentences as pieces, it equals the assembled ids.
  std::vector<int32_t> full = tokenize(p.text);
  if (full == p.ids) return p;

  // Otherwise count with full tokenizations (cached by unit count) and give the model those ids.
  std::map<int64_t, int64_t> sizes;
  auto measured = [&](int64_t units) {
    auto [it, fresh] = sizes.try_emplace(units, 0);
    if (fresh)
      it->second = static_cast<int64_t>(
          tokenize(assemble(plan(units, depth, first, needle), draw, nullptr).text).size());
    return it->second;
  };
  sizes[n] = static_cast<int64_t>(full.size());
  if (measured(0) > target) too_short(measured(0));
  n = largest_fit(measured, n);
  Offsets at;
  p = assemble(plan(n, depth, first, needle), draw, &at);
  p.ids = tokenize(p.text);
  p.assembled = false;
  // Token positions from the tokenization of the text before each boundary.
  auto tokens_before = [&](size_t chars) {
    return static_cast<int64_t>(tokenize(std::string_view(p.text).substr(0, chars)).size());
  };
  const int64_t filler_pos = tokens_before(at.filler), needle_pos = tokens_before(at.needle);
  const int64_t tail_pos = tokens_before(at.tail);
  const int64_t needle_end = tokens_before(at.needle_end);
  p.filler_pos = filler_pos;
  p.needle_pos = needle_pos;
  p.needle_tokens = std::max<int64_t>(0, std::min(needle_end, tail_pos) - needle_pos);
  p.filler_before = needle_pos - filler_pos;
  p.filler_tokens = std::max<int64_t>(0, tail_pos - filler_pos - p.needle_tokens);
  return p;
}

}  // namespace lc::eval
