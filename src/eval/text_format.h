// Small text formatters shared by the evaluations' tables, progress lines, figures and report.
#pragma once

#include <string>

namespace lc::eval {

// "12.3s", "4m05s", "2h07m".
std::string format_duration(double secs);
// 0.953 -> "95%".
std::string format_percent(double fraction);
// "3.391 ± 0.051": three decimals below 10, fewer for larger values.
std::string format_ppl(double ppl, double err);
// Shortest decimal text that reads back as the same double: 4 -> "4", 1.5 -> "1.5".
std::string format_number(double v);
// Characters as people see them (UTF-8 continuation bytes do not count).
size_t display_width(const std::string& s);
// Escapes invalid UTF-8 so JSON output never fails on a broken byte sequence.
std::string valid_utf8(const std::string& s);

}  // namespace lc::eval
