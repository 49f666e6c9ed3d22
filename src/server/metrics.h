// The server's counters and the Prometheus text of GET /metrics: requests by outcome and by
// error status, prompt tokens prefilled and found in sessions, tokens generated, time spent
// prefilling and decoding (and their rates), a time-to-first-token histogram. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace lc::server {

class Metrics {
 public:
  // A finished (or cancelled) completion.
  void completion(bool cancelled, int64_t cached, int64_t prefilled, int64_t generated,
                  double prompt_seconds, double gen_seconds);
  void time_to_first_token(double seconds);
  void error_answer(int status);

  struct Gauges {
    int running = 0, waiting = 0;
    size_t sessions = 0, kv_bytes_in_ram = 0, kv_bytes_on_disk = 0, sessions_saved = 0;
  };
  std::string prometheus(const Gauges& g) const;

  // Bounds of the time-to-first-token histogram (seconds; +Inf last).
  static constexpr std::array<double, 11> kBuckets = {0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                      5,    10,  30,   60,  300};

 private:
  mutable std::mutex m_;
  uint64_t done_ = 0, cancelled_ = 0, cached_ = 0, prefilled_ = 0, generated_ = 0;
  double prompt_seconds_ = 0, gen_seconds_ = 0;
  std::array<uint64_t, kBuckets.size() + 1> ttft_{};
  double ttft_sum_ = 0;
  uint64_t ttft_count_ = 0;
  std::map<int, uint64_t> errors_;  // by HTTP status
};

}  // namespace lc::server
