// The retrieval trace as a file of JSON lines (memory.trace_retrieval), one line per search:
//   {"layer":0,"pos":4096,"queries":256,"blocks":250,"chosen":[17,3,...],"scores":[...],
//    "needle":[{"block":120,"rank":0,"rank_index":0,"rank_head":[0,3,...],"chosen":true}]}
// "needle" appears when a needle is set (eval passkey sets it per trial); "rank" is the needle
// block's place under the exact score summed over heads (0 = best), "rank_index" its place in
// what the index search returned (-1 = not returned), "rank_head" its exact place under each
// query head's own score. A line {"trial":...} marks where each passkey trial starts.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "memory/retrieval_trace.h"

namespace lc {

class RetrievalTraceFile final : public RetrievalTrace {
 public:
  // Appends to `path` (created when missing); lc::Error naming memory.trace_retrieval when it
  // cannot be opened.
  explicit RetrievalTraceFile(const std::string& path);
  ~RetrievalTraceFile() override;
  void record(const RetrievalEvent& e) override;
  // A line of the caller's own (a JSON object, without newline).
  void note(const std::string& json_object);

 private:
  std::FILE* f_ = nullptr;
  std::mutex mu_;
  std::string line_;
};

// Serialises an event to its JSON line (without newline).
std::string retrieval_event_json(const RetrievalEvent& e);

}  // namespace lc
