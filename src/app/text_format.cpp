#include "app/text_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lc::app {

std::string format_duration(double secs) {
  char buf[64];
  const long long s = std::llround(std::max(0.0, secs));
  if (secs < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", std::max(0.0, secs));
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  return buf;
}

std::string format_percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", fraction * 100);
  return buf;
}

std::string format_ppl(double ppl, double err) {
  const int dec = ppl < 10 ? 3 : ppl < 100 ? 2 : ppl < 1000 ? 1 : 0;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.*f \xC2\xB1 %.*f", dec, ppl, dec, err);
  return buf;
}

}  // namespace lc::app
