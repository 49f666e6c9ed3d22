#include "server/metrics.h"

#include "core/error.h"

namespace lc::server {

void Metrics::completion(bool cancelled, int64_t cached, int64_t prefilled, int64_t generated,
                         double prompt_seconds, double gen_seconds) {
  std::lock_guard lock(m_);
  ++(cancelled ? cancelled_ : done_);
  cached_ += static_cast<uint64_t>(cached);
  prefilled_ += static_cast<uint64_t>(prefilled);
  generated_ += static_cast<uint64_t>(generated);
  prompt_seconds_ += prompt_seconds;
  gen_seconds_ += gen_seconds;
}

void Metrics::time_to_first_token(double seconds) {
  std::lock_guard lock(m_);
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  ++ttft_[b];
  ttft_sum_ += seconds;
  ++ttft_count_;
}

void Metrics::error_answer(int status) {
  std::lock_guard lock(m_);
  ++errors_[status];
}

std::string Metrics::prometheus(const Gauges& g) const {
  std::lock_guard lock(m_);
  std::string out;
  auto head = [&](const char* name, const char* type, const char* help) {
    out += cat("# HELP longctx_", name, " ", help, "\n# TYPE longctx_", name, " ", type, "\n");
  };
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    head(name, type, help);
    out += cat("longctx_", name, " ", v, "\n");
  };
  metric("requests_total", "counter", "completions finished", double(done_));
  metric("requests_cancelled_total", "counter", "completions cancelled by a client going away",
         double(cancelled_));
  head("request_errors_total", "counter", "requests answered with an error, by HTTP status");
  if (errors_.empty()) out += "longctx_request_errors_total{status=\"400\"} 0\n";
  for (const auto& [status, n] : errors_)
    out += cat("longctx_request_errors_total{status=\"", status, "\"} ", n, "\n");
  metric("prompt_tokens_total", "counter", "prompt tokens prefilled", double(prefilled_));
  metric("cached_tokens_total", "counter", "prompt tokens a session already held", double(cached_));
  metric("generated_tokens_total", "counter", "tokens generated", double(generated_));
  metric("prompt_seconds_total", "counter", "seconds spent prefilling prompts", prompt_seconds_);
  metric("generation_seconds_total", "counter", "seconds spent generating tokens", gen_seconds_);
  metric("prompt_tokens_per_second", "gauge", "prompt tokens prefilled per second, all requests",
         prompt_seconds_ > 0 ? double(prefilled_) / prompt_seconds_ : 0.0);
  metric("generation_tokens_per_second", "gauge", "tokens generated per second, all requests",
         gen_seconds_ > 0 ? double(generated_) / gen_seconds_ : 0.0);
  head("time_to_first_token_seconds", "histogram",
       "from a completion request's arrival to its first generated token");
  uint64_t acc = 0;
  for (size_t b = 0; b < kBuckets.size(); ++b) {
    acc += ttft_[b];
    out += cat("longctx_time_to_first_token_seconds_bucket{le=\"", kBuckets[b], "\"} ", acc, "\n");
  }
  acc += ttft_[kBuckets.size()];
  out += cat("longctx_time_to_first_token_seconds_bucket{le=\"+Inf\"} ", acc, "\n");
  out += cat("longctx_time_to_first_token_seconds_sum ", ttft_sum_, "\n");
  out += cat("longctx_time_to_first_token_seconds_count ", ttft_count_, "\n");
  metric("requests_running", "gauge", "completions generating now", g.running);
  metric("requests_waiting", "gauge", "completions waiting for a turn", g.waiting);
  metric("sessions", "gauge", "named sessions held in RAM", double(g.sessions));
  metric("sessions_saved", "gauge", "sessions saved in the session folder",
         double(g.sessions_saved));
  metric("kv_bytes_in_ram", "gauge", "bytes of KV memory of the idle sessions in RAM",
         double(g.kv_bytes_in_ram));
  metric("kv_bytes_on_disk", "gauge",
         "bytes of KV memory the idle sessions spilled to disk (the session folder aside)",
         double(g.kv_bytes_on_disk));
  return out;
}

}  // namespace lc::server
