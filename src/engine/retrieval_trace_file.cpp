#include "engine/retrieval_trace_file.h"

#include <cerrno>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace lc {

namespace {

template <typename T>
void put_list(std::string& s, const std::vector<T>& v) {
  s += '[';
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>)
      std::snprintf(buf, sizeof buf, "%s%.6g", i ? "," : "", static_cast<double>(v[i]));
    else
      std::snprintf(buf, sizeof buf, "%s%lld", i ? "," : "", static_cast<long long>(v[i]));
    s += buf;
  }
  s += ']';
}

}  // namespace

std::string retrieval_event_json(const RetrievalEvent& e) {
  std::string s = cat("{\"layer\":", e.layer, ",\"pos\":", e.pos, ",\"queries\":", e.n_queries,
                      ",\"blocks\":", e.n_blocks, ",\"chosen\":");
  put_list(s, e.chosen);
  if (!e.scores.empty()) {
    s += ",\"scores\":";
    put_list(s, e.scores);
  }
  if (!e.needle.empty()) {
    s += ",\"needle\":[";
    for (size_t i = 0; i < e.needle.size(); ++i) {
      const RetrievalEvent::Needle& n = e.needle[i];
      s += cat(i ? "," : "", "{\"block\":", n.block);
      if (!n.rank_head.empty()) {
        s += cat(",\"rank\":", n.rank_exact);
        s += ",\"rank_head\":";
        put_list(s, n.rank_head);
      }
      s += cat(",\"rank_index\":", n.rank_index, ",\"chosen\":", n.chosen ? "true" : "false", "}");
    }
    s += ']';
  }
  s += '}';
  return s;
}

RetrievalTraceFile::RetrievalTraceFile(const std::string& path) {
  f_ = std::fopen(path.c_str(), "a");
  if (!f_)
    fail_setting({"memory.trace_retrieval"}, "memory.trace_retrieval: cannot open '", path,
                 "' for writing: ", std::strerror(errno));
}

RetrievalTraceFile::~RetrievalTraceFile() {
  if (f_) std::fclose(f_);
}

void RetrievalTraceFile::record(const RetrievalEvent& e) { note(retrieval_event_json(e)); }

void RetrievalTraceFile::note(const std::string& json_object) {
  std::lock_guard<std::mutex> lock(mu_);
  line_ = json_object;
  line_ += '\n';
  std::fwrite(line_.data(), 1, line_.size(), f_);
}

}  // namespace lc
