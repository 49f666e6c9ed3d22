#include "app/flag_string.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace lc::app {

std::vector<std::string> split_flag_string(const std::string& s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t end = s.find('\'', i + 1);
      if (end == std::string::npos) fail("unterminated ' quote in flags \"", s, "\"");
      cur.append(s, i + 1, end - i - 1);
      i = end + 1;
    } else if (c == '"') {
      ++i;
      for (;;) {
        if (i >= s.size()) fail("unterminated \" quote in flags \"", s, "\"");
        if (s[i] == '"') break;
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
        cur += s[i++];
      }
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= s.size()) fail("trailing backslash in flags \"", s, "\"");
      cur += s[i + 1];
      i += 2;
    } else {
      cur += c;
      ++i;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

SessionSpec parse_flag_words(const std::vector<std::string>& words, const std::string& what) {
  ModelOptions o;
  // The same option definitions as the model commands, so names, help and checks never drift.
  CLI::App app{"flags"};
  app.set_help_flag();
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  o.add_rope_options(app);
  o.add_memory_options(app);
  std::vector<std::string> args(words.rbegin(), words.rend());  // CLI11 takes them reversed
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    std::string known;
    for (const CLI::Option* opt : app.get_options())
      if (!opt->get_lnames().empty())
        known += (known.empty() ? "--" : ", --") + opt->get_lnames()[0];
    const std::string msg = e.what();
    if (msg.find("not expected") == std::string::npos) fail(what, ": ", msg);
    fail(what, ": ", msg, "; expected flags among ", known);
  }
  try {
    return o.spec();  // values are checked here, not when the cell runs
  } catch (const Error& e) {
    fail(what, ": ", message_with_flags(e));
  }
}

RopeOverrides parse_rope_flag_string(const std::string& s, const std::string& what) {
  RopeOverrides o;
  const std::vector<std::string> words = split_flag_string(s);
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    const size_t eq = w.find('=');
    const std::string flag = w.substr(0, eq);
    std::string value;
    if (eq != std::string::npos) {
      value = w.substr(eq + 1);
    } else if (i + 1 < words.size()) {
      value = words[++i];
    } else {
      fail(what, ": ",
           w.rfind("--", 0) == 0 ? "flag " + w + " needs a value" : "unexpected '" + w + "'");
    }
    bool known = false;
    try {
      known = w.rfind("--", 0) == 0 && rope_parse_flag(o, flag, value);
    } catch (const Error& e) {
      fail(what, ": ", e.what());
    }
    if (!known)
      fail(what, ": '", flag, "' is not a RoPE flag; expected --rope-scaling, --rope-scale, ",
           "--rope-freq-base, --rope-freq-scale, --yarn-orig-ctx, --yarn-ext-factor, ",
           "--yarn-attn-factor, --yarn-beta-fast, --yarn-beta-slow or --rope-factors");
  }
  return o;
}

}  // namespace lc::app
