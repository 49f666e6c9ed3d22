#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace lc {

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStrings::push(std::string_view text) {
  if (stopped_) return {};
  if (stops_.empty()) return std::string(text);
  pending_.append(text);

  // The stop that completes first in the text; ties (same end) -> the longest.
  size_t best_start = std::string::npos;
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : stops_) {
    size_t pos = pending_.find(s);
    if (pos == std::string::npos) continue;
    size_t end = pos + s.size();
    if (best == nullptr || end < best_end || (end == best_end && pos < best_start)) {
      best = &s;
      best_start = pos;
      best_end = end;
    }
  }
  if (best != nullptr) {
    stopped_ = true;
    matched_ = *best;
    std::string out = pending_.substr(0, best_start);
    pending_.clear();
    return out;
  }

  // Hold back the longest tail that is a proper prefix of some stop string. (A whole stop string
  // cannot be a tail here: it would have been found above.)
  size_t max_len = 0;
  for (const std::string& s : stops_) max_len = std::max(max_len, s.size());
  const size_t limit = std::min(pending_.size(), max_len - 1);
  size_t hold = 0;
  for (size_t k = limit; k > 0 && hold == 0; --k) {
    std::string_view tail = std::string_view(pending_).substr(pending_.size() - k);
    for (const std::string& s : stops_) {
      if (s.size() > k && std::string_view(s).substr(0, k) == tail) {
        hold = k;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStrings::finish() {
  if (stopped_) return {};
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace lc
