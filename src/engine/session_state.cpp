#include "engine/session_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/state_io.h"
#include "model/rope/rope_config.h"

namespace lc {

namespace {

constexpr int kVersion = 2;  // 2: RoPE tables carry n_hat and the unscaled leading frequencies
const char* kFormat = "longctx-session";

// Hash of the first and last MiB of the file and its size: cheap, and different for another
// model (or the same shape with other weights) in practice.
std::string file_digest(const std::string& path, uint64_t* size_out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "unreadable";
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  *size_out = size;
  constexpr uint64_t kPart = 1 << 20;
  std::vector<uint8_t> buf;
  for (uint64_t off : {uint64_t{0}, size > kPart ? size - kPart : 0}) {
    const size_t n = static_cast<size_t>(std::min(kPart, size - off));
    const size_t at = buf.size();
    buf.resize(at + n);
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, buf.data() + at + got, n - got, static_cast<off_t>(off + got));
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    buf.resize(at + got);
  }
  ::close(fd);
  return content_hash(buf.data(), buf.size());
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  ByteWriter w;
  w.array(v);
  return std::move(w.bytes());
}

nlohmann::json parse_manifest(const std::string& text, const std::string& what) {
  nlohmann::json m = nlohmann::json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("format") || m["format"] != kFormat)
    fail(what, ": the manifest is not a longctx session manifest (corrupt?)");
  if (!m.contains("version") || m["version"] != kVersion)
    fail(what, ": the state was written in format version ", m["version"].dump(),
         ", this longctx reads version ", kVersion);
  if (!m.contains("tokens_count") || !m["tokens_count"].is_number_integer())
    fail(what, ": the manifest lacks 'tokens_count'");
  for (const char* k : {"tokens", "memory", "logits"})
    if (!m.contains(k) || !m[k].is_string()) fail(what, ": the manifest lacks '", k, "'");
  if (!m.contains("fingerprint") || !m["fingerprint"].is_object())
    fail(what, ": the manifest lacks 'fingerprint'");
  return m;
}

// A Hugging Face folder: every file's name, size and digest, together.
std::string folder_digest(const std::string& dir, uint64_t* size_out) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string all;
  uint64_t total = 0;
  for (const std::string& n : names) {
    uint64_t size = 0;
    all += n + ":" + file_digest(dir + "/" + n, &size) + ";";
    total += size;
  }
  *size_out = total;
  return content_hash(all.data(), all.size());
}

// Settings that change how much work a step does or where its bytes go, not what the saved state
// is: a session saved with one value continues with another (a search budget changes which
// blocks later steps retrieve, as a sampler setting changes what they generate).
const std::set<std::string>& work_only_settings() {
  static const std::set<std::string> kWorkOnly = {"threads",
                                                  "batch",
                                                  "memory.mem_budget",
                                                  "memory.index_budget",
                                                  "memory.index_probe",
                                                  "memory.spill_dir",
                                                  "memory.spill_max",
                                                  "memory.measure_recall",
                                                  "memory.trace_retrieval"};
  return kWorkOnly;
}

}  // namespace

Fingerprint session_fingerprint(const Session& s) {
  Fingerprint f;
  std::string path = s.model().gguf().path();
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  uint64_t size = 0;
  std::error_code ec;
  const std::string digest = std::filesystem::is_directory(path, ec) ? folder_digest(path, &size)
                                                                     : file_digest(path, &size);
  f.emplace_back("model.file", slash == std::string::npos ? path : path.substr(slash + 1));
  f.emplace_back("model.bytes", std::to_string(size));
  f.emplace_back("model.digest", digest);
  for (const auto& [name, v] : s.options().settings)
    if (work_only_settings().count(name) == 0) f.emplace_back(name, v.value);
  int i = 0;
  for (const std::string& line : rope_describe(s.options().rope))
    f.emplace_back("rope." + std::to_string(i++), line);
  return f;
}

SaveStats save_session(Session& s, ObjectStore& store, const std::string& name,
                       const std::string& label) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> refs;
  ByteWriter head;
  MemorySave out{store, name, head, refs};
  s.memory().save_state(out);
  const std::string mem_key = store.put(name, head.bytes());
  const std::string tok_key = store.put(name, bytes_of(s.tokens()));
  const std::string log_key = store.put(name, bytes_of(s.last_logits()));
  refs.push_back(mem_key);
  refs.push_back(tok_key);
  refs.push_back(log_key);
  nlohmann::json fp = nlohmann::json::object();
  for (const auto& [k, v] : session_fingerprint(s)) fp[k] = v;
  nlohmann::json m = {{"format", kFormat},
                      {"version", kVersion},
                      {"saved_at", utc_now()},
                      {"label", label.empty() ? name : label},
                      {"tokens_count", s.n_past()},
                      {"memory_policy", s.memory().name()},
                      {"fingerprint", fp},
                      {"memory", mem_key},
                      {"tokens", tok_key},
                      {"logits", log_key},
                      {"objects", refs}};
  SaveStats st;
  st.manifest = m.dump(1);
  store.put_manifest(name, st.manifest, refs);
  st.tokens = static_cast<uint64_t>(s.n_past());
  st.objects = refs.size();
  st.bytes_stored = store.bytes(name);
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

bool load_session(Session& s, const ObjectStore& store, const std::string& name) {
  s.reset();
  const std::optional<std::string> text = store.get_manifest(name);
  if (!text) return false;
  const std::string what = "session '" + name + "' in " + store.describe();
  const nlohmann::json m = parse_manifest(*text, what);
  // The fingerprint first: a state of another model or other settings is refused as a whole.
  std::string diff;
  std::set<std::string> seen;
  const nlohmann::json& saved = m["fingerprint"];
  for (const auto& [k, v] : session_fingerprint(s)) {
    seen.insert(k);
    const std::string was = saved.contains(k) && saved[k].is_string() ? saved[k].get<std::string>()
                                                                      : std::string("(none)");
    if (was != v) diff += cat("; ", k, " was ", was, ", now ", v);
  }
  for (const auto& [k, v] : saved.items())
    if (seen.count(k) == 0 && work_only_settings().count(k) == 0)
      diff += cat("; ", k, " was ", v.dump(), ", now (none)");
  if (!diff.empty())
    throw SessionIncompatible(
        cat(what, " was saved with another model or other settings and cannot be continued",
            diff.substr(0, 1) == ";" ? ":" + diff.substr(1) : diff));
  try {
    const std::vector<uint8_t> head = store.get(m["memory"].get<std::string>());
    ByteReader r(head.data(), head.size(), what + ": memory state");
    MemoryLoad in{store, r};
    s.memory().load_state(in);
    r.expect(r.done(), "memory state length");
    const std::vector<uint8_t> tb = store.get(m["tokens"].get<std::string>());
    ByteReader tr(tb.data(), tb.size(), what + ": tokens");
    std::vector<int32_t> tokens = tr.array<int32_t>();
    const int64_t nv = s.model().hparams().n_vocab;
    for (int32_t t : tokens) tr.expect(t >= 0 && t < nv, "token id");
    tr.expect(static_cast<int64_t>(tokens.size()) == s.memory().n_past(), "token count");
    const std::vector<uint8_t> lb = store.get(m["logits"].get<std::string>());
    ByteReader lr(lb.data(), lb.size(), what + ": logits");
    std::vector<float> logits = lr.array<float>();
    lr.expect(logits.empty() || static_cast<int64_t>(logits.size()) == nv, "logits size");
    s.restore(std::move(tokens), std::move(logits));
  } catch (...) {
    s.reset();
    throw;
  }
  return true;
}

SavedSessionInfo saved_session_info(const std::string& manifest_text, const std::string& name) {
  const nlohmann::json m = parse_manifest(manifest_text, "session '" + name + "'");
  SavedSessionInfo i;
  i.tokens = m["tokens_count"].get<int64_t>();
  if (m.contains("saved_at") && m["saved_at"].is_string()) i.saved_at = m["saved_at"];
  if (m.contains("memory_policy") && m["memory_policy"].is_string()) i.memory = m["memory_policy"];
  i.label = m.contains("label") && m["label"].is_string() ? m["label"].get<std::string>() : name;
  return i;
}

}  // namespace lc
