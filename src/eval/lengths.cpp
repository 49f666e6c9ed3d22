#include "eval/lengths.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "core/error.h"

namespace lc::eval {

int64_t parse_length(const std::string& s) {
  std::string t = s;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
  int64_t mult = 1;
  if (!t.empty()) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(t.back())));
    if (c == 'k') mult = 1024;
    if (c == 'm') mult = 1024 * 1024;
    if (mult > 1) t.pop_back();
  }
  int64_t n = 0;
  const char* end = t.data() + t.size();
  auto [p, ec] = std::from_chars(t.data(), end, n);
  if (t.empty() || ec != std::errc() || p != end || n <= 0)
    fail("length '", s, "': expected a positive whole number of tokens, optionally with k (x1024) ",
         "or m (x1048576), e.g. 512, 2k, 1m");
  if (n > std::numeric_limits<int64_t>::max() / mult) fail("length '", s, "' is too large");
  return n * mult;
}

std::vector<int64_t> parse_lengths(const std::string& s, const std::string& setting) {
  std::vector<int64_t> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? comma : comma - start);
    int64_t n = 0;
    try {
      n = parse_length(item);
    } catch (const Error& e) {
      fail_setting({setting}, e.what());
    }
    if (std::find(out.begin(), out.end(), n) != out.end())
      fail_setting({setting}, setting, " '", s, "': length ", n, " is given twice");
    out.push_back(n);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace lc::eval
