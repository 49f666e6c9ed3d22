// Small text formatters shared by the commands' tables, progress lines and reports.
#pragma once

#include <string>

namespace lc::app {

// "12.3s", "4m05s", "2h07m".
std::string format_duration(double secs);
// 0.953 -> "95%".
std::string format_percent(double fraction);
// "3.391 ± 0.051": three decimals below 10, fewer for larger values.
std::string format_ppl(double ppl, double err);

}  // namespace lc::app
