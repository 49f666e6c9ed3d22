// Incremental stop-string detection over streamed, decoded text.
//
// push() appends newly decoded text and returns what is safe to show now: everything except the
// longest tail that is a prefix of some stop string (it may still become a stop). When a stop
// string occurs, stopped() becomes true, matched() names it, and the returned text ends right
// before it; text after it is discarded, and later push()/finish() calls return "".
//
// The result does not depend on how the text is split into pushes: the stop that wins is the one
// that completes first in the text (earliest end); among those ending at the same byte, the
// longest. Matching is byte-wise, so UTF-8 stop strings work on UTF-8 text (a held tail starts on a
// character boundary whenever the stop strings are valid UTF-8). Empty stop strings are ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lc {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Appends text; returns the part that is safe to emit now.
  std::string push(std::string_view text);

  // End of stream: returns the held-back tail (no stop occurred), or "" if stopped.
  std::string finish();

  bool stopped() const { return stopped_; }
  // The stop string that occurred; empty until stopped().
  const std::string& matched() const { return matched_; }
  // Bytes currently held back.
  size_t held() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // received but not yet emitted
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace lc
