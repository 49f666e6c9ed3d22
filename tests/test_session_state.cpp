// Saved sessions: a session saved and loaded into a new one continues with bit-identical logits
// for every memory (full in each KV type, streaming, infllm with blocks in RAM and spilled to
// disk); saves write only what is new; another model's or other settings' state is refused with
// the difference named; a corrupt or truncated state is an error that leaves the session empty;
// truncation equals never having read the forgotten tokens; the object stores themselves.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/object_store.h"
#include "engine/session.h"
#include "engine/session_spec.h"
#include "engine/session_state.h"
#include "model/model.h"
#include "support/paths.h"

namespace lc {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const Model> stories() {
  static auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  return m;
}

// Head dim 32: a full memory in q8_0 needs whole 32-value blocks per head.
std::shared_ptr<const Model> passkey() {
  static auto m = Model::load(test::shared_path("models/passkey-llama-tiny.gguf"));
  return m;
}

struct TempDir : lc::test::ScopedTempDir {
  TempDir() : ScopedTempDir("lc-state") {}
};

struct Case {
  const char* name;
  MemoryPolicy policy;
  KvType kv = KvType::F32;
  size_t budget = 0;
  SpillType spill = SpillType::F16;
};

SessionOptions options(const Model& m, const Case& c, const std::string& spill_dir,
                       int64_t n_local = 48, int64_t index_budget = 0) {
  SessionSpec spec;
  spec.memory.policy = c.policy;
  spec.memory.kv_type = c.kv;
  spec.ctx_train = 512;
  spec.batch = 16;
  if (c.policy != MemoryPolicy::Full) {
    spec.memory.n_init = 4;
    spec.memory.n_local = n_local;
    spec.memory.exec_block = 16;
    spec.memory.block_size = 8;
    spec.memory.topk = 3;
    spec.memory.repr_topk = 2;
    spec.memory.mem_budget = c.budget;
    spec.memory.spill_type = c.spill;
    spec.memory.spill_dir = spill_dir;
    if (index_budget > 0) spec.memory.index_budget = index_budget;
  }
  return resolve_session(m, spec);
}

std::vector<int32_t> text_tokens(const Model& m, int n, int salt) {
  std::vector<int32_t> t{m.tokenizer().bos()};
  for (int i = 1; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 37 + salt * 11) % 450));
  return t;
}

void feed(Session& s, const std::vector<int32_t>& t) {
  s.eval(t.data(), static_cast<int64_t>(t.size()));
}

// The message of the lc::Error fn throws ("" when it throws none).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const Case kCases[] = {
    {"full_f32", MemoryPolicy::Full},
    {"full_f16", MemoryPolicy::Full, KvType::F16},
    {"full_q8_0", MemoryPolicy::Full, KvType::Q8_0},
    {"streaming", MemoryPolicy::Streaming},
    {"infllm_in_ram", MemoryPolicy::InfLLM},
    {"infllm_spilled_f16", MemoryPolicy::InfLLM, KvType::F32, 24 << 10, SpillType::F16},
    {"infllm_spilled_q8_0", MemoryPolicy::InfLLM, KvType::F32, 24 << 10, SpillType::Q8_0},
};

class SavedSession : public ::testing::TestWithParam<Case> {};

TEST_P(SavedSession, ContinuesWithIdenticalLogits) {
  const Case c = GetParam();
  auto m = c.kv == KvType::Q8_0 ? passkey() : stories();
  ASSERT_EQ(m->hparams().head_dim % kv_type_block(c.kv), 0);
  TempDir dir;
  auto store = open_dir_store(dir.path + "/store");
  Session a(m, options(*m, c, dir.path));
  feed(a, text_tokens(*m, 150, 1));
  const SaveStats st1 = save_session(a, *store, "s1");
  EXPECT_EQ(st1.tokens, 150u);
  // More text, saved again: the earlier immutable objects are kept, the replaced ones deleted.
  feed(a, text_tokens(*m, 70, 2));
  const std::vector<std::string> before = store->list("s1");
  save_session(a, *store, "s1");
  const std::vector<std::string> after = store->list("s1");
  if (c.policy != MemoryPolicy::Streaming) {
    size_t kept = 0;
    for (const auto& k : before) kept += std::count(after.begin(), after.end(), k);
    EXPECT_GE(kept, 1u) << "a segment written by the first save is reused";
  }

  Session b(m, options(*m, c, dir.path));
  ASSERT_TRUE(load_session(b, *store, "s1"));
  EXPECT_EQ(b.n_past(), a.n_past());
  EXPECT_EQ(b.tokens(), a.tokens());
  EXPECT_EQ(b.last_logits(), a.last_logits());
  // The same next tokens give the same logits, bit for bit, prefill chunks and decoding alike.
  const std::vector<int32_t> more = text_tokens(*m, 40, 3);
  for (size_t i = 1; i < more.size(); i += 13) {
    const size_t n = std::min<size_t>(13, more.size() - i);
    a.feed(more.data() + i, static_cast<int64_t>(n));
    b.feed(more.data() + i, static_cast<int64_t>(n));
    ASSERT_EQ(a.last_logits(), b.last_logits()) << c.name << " after " << i;
  }
  EXPECT_FALSE(load_session(b, *store, "nope"));
}

INSTANTIATE_TEST_SUITE_P(EveryMemory, SavedSession, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(SessionState, BundleFileRoundTrips) {
  auto m = stories();
  TempDir dir;
  const Case c{"infllm", MemoryPolicy::InfLLM, KvType::F32, 24 << 10};
  const std::string file = dir.path + "/s.session";
  Session a(m, options(*m, c, dir.path));
  feed(a, text_tokens(*m, 120, 4));
  {
    auto store = open_bundle_store(file);
    save_session(a, *store, "session");
    feed(a, text_tokens(*m, 30, 5));
    save_session(a, *store, "session");
  }
  auto store = open_bundle_store(file);
  Session b(m, options(*m, c, dir.path));
  ASSERT_TRUE(load_session(b, *store, "session"));
  const std::vector<int32_t> next{5, 6, 7};
  a.feed(next.data(), 3);
  b.feed(next.data(), 3);
  EXPECT_EQ(a.last_logits(), b.last_logits());

  // A truncated file is an error naming it.
  const auto size = fs::file_size(file);
  fs::resize_file(file, size - 7);
  const std::string msg = error_of([&] { open_bundle_store(file); });
  EXPECT_NE(msg.find("truncated or corrupt"), std::string::npos) << msg;
  std::ofstream(dir.path + "/text") << "hello";
  EXPECT_THROW(open_bundle_store(dir.path + "/text"), Error);

  // A refused file keeps no descriptor open (a server opening many stays within its limit).
  const auto open_fds = [] {
    return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator{});
  };
  const auto before = open_fds();
  for (int i = 0; i < 50; ++i) EXPECT_THROW(open_bundle_store(file), Error);
  EXPECT_EQ(open_fds(), before);
}

std::string load_error(Session& s, const ObjectStore& store, const std::string& name) {
  return error_of([&] { load_session(s, store, name); });
}

TEST(SessionState, OtherSettingsAreRefusedNamingTheDifference) {
  auto m = stories();
  TempDir dir;
  auto store = open_dir_store(dir.path);
  const Case c{"infllm", MemoryPolicy::InfLLM};
  Session a(m, options(*m, c, dir.path));
  feed(a, text_tokens(*m, 100, 6));
  save_session(a, *store, "s");
  Session b(m, options(*m, c, dir.path, 64));
  const std::string msg = load_error(b, *store, "s");
  EXPECT_NE(msg.find("memory.n_local was 48, now 64"), std::string::npos) << msg;
  EXPECT_EQ(b.n_past(), 0);
  Session f(m, options(*m, Case{"full", MemoryPolicy::Full}, dir.path));
  EXPECT_NE(load_error(f, *store, "s").find("memory.policy"), std::string::npos);
  // Work-only settings (the RAM budget, the spill folder) may change.
  Session d(m, options(*m, Case{"infllm", MemoryPolicy::InfLLM, KvType::F32, 24 << 10}, "/tmp"));
  EXPECT_TRUE(load_session(d, *store, "s"));
  // So may the search's budget (how many blocks a search scores, not what the memory holds).
  Session e(m, options(*m, c, dir.path, 48, 64));
  EXPECT_TRUE(load_session(e, *store, "s"));
  EXPECT_EQ(e.n_past(), a.n_past());
}

TEST(SessionState, CorruptObjectIsAnErrorAndLeavesTheSessionEmpty) {
  auto m = stories();
  TempDir dir;
  auto store = open_dir_store(dir.path);
  const Case c{"infllm", MemoryPolicy::InfLLM};
  Session a(m, options(*m, c, dir.path));
  feed(a, text_tokens(*m, 100, 7));
  save_session(a, *store, "s");
  save_session(a, *store, "t");
  const std::vector<std::string> keys = store->list("s");
  ASSERT_FALSE(keys.empty());
  const std::string obj = dir.path + "/objects/" + keys.front();
  {
    std::fstream f(obj, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(obj) / 2));
    f.put('\x5a');
  }
  Session b(m, options(*m, c, dir.path));
  const std::string msg = load_error(b, *store, "s");
  EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
  EXPECT_EQ(b.n_past(), 0);
  EXPECT_TRUE(b.tokens().empty());
  // Another session of the same store is unaffected.
  EXPECT_TRUE(load_session(b, *store, "t"));
  EXPECT_EQ(b.n_past(), 100);
  // A missing object, and a manifest that is not one.
  fs::remove(obj);
  EXPECT_NE(load_error(b, *store, "s").find("missing"), std::string::npos);
  std::ofstream(dir.path + "/manifests/u.json") << "{\"format\": 3}";
  EXPECT_NE(load_error(b, *store, "u").find("not a longctx session manifest"), std::string::npos);
}

TEST(SessionState, TruncateEqualsNeverHavingReadTheRest) {
  auto m = stories();
  const std::vector<int32_t> p = text_tokens(*m, 96, 8), more = text_tokens(*m, 24, 9);
  for (const Case& c : {Case{"full", MemoryPolicy::Full}, Case{"infllm", MemoryPolicy::InfLLM}}) {
    Session a(m, options(*m, c, "", 256)), b(m, options(*m, c, "", 256));
    a.feed(p.data(), 64);
    a.feed(p.data() + 64, 32);
    ASSERT_TRUE(a.truncate(64)) << c.name;
    EXPECT_EQ(a.n_past(), 64);
    EXPECT_TRUE(a.last_logits().empty());
    b.feed(p.data(), 64);
    a.feed(more.data() + 1, 8);
    b.feed(more.data() + 1, 8);
    EXPECT_EQ(a.last_logits(), b.last_logits()) << c.name;
  }
  // StreamingLLM cannot take back tokens that left its window; InfLLM gives them back from its
  // sinks and blocks (test_memory_rollback.cpp).
  Session s(m, options(*m, Case{"streaming", MemoryPolicy::Streaming}, ""));
  feed(s, text_tokens(*m, 150, 10));
  EXPECT_FALSE(s.truncate(20));
  EXPECT_EQ(s.n_past(), 150);
  Session i(m, options(*m, Case{"infllm", MemoryPolicy::InfLLM}, ""));
  feed(i, text_tokens(*m, 150, 10));
  EXPECT_TRUE(i.truncate(20));
  EXPECT_EQ(i.n_past(), 20);
}

// A full disk (simulated with a file size limit in a child process): the save fails with an error
// naming the file, and the state saved before stays whole and loadable.
TEST(SessionState, FullDiskKeepsTheLastConsistentState) {
  auto m = stories();
  TempDir dir;
  const Case c{"infllm", MemoryPolicy::InfLLM};
  {
    Session a(m, options(*m, c, dir.path));
    feed(a, text_tokens(*m, 100, 11));
    auto store = open_dir_store(dir.path);
    save_session(a, *store, "s");
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 3;
    try {
      Session a(m, options(*m, c, dir.path));
      auto store = open_dir_store(dir.path);
      load_session(a, *store, "s");
      feed(a, text_tokens(*m, 200, 12));
      save_session(a, *store, "s");
      code = 1;  // saved although the disk was full
    } catch (const Error& e) {
      code = std::string(e.what()).find("cannot write") != std::string::npos ? 0 : 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: saved anyway, 2: another error, 3: no error";
  Session b(m, options(*m, c, dir.path));
  auto store = open_dir_store(dir.path);
  ASSERT_TRUE(load_session(b, *store, "s"));
  EXPECT_EQ(b.n_past(), 100);
}

TEST(ObjectStore, ObjectsManifestsAndNames) {
  TempDir dir;
  for (int kind = 0; kind < 2; ++kind) {
    auto store = kind == 0 ? open_dir_store(dir.path + "/d") : open_bundle_store(dir.path + "/b");
    const std::vector<uint8_t> a{1, 2, 3}, b{4, 5};
    const std::string ka = store->put("x", a), kb = store->put("x", b);
    EXPECT_EQ(store->put("x", a), ka);
    EXPECT_TRUE(store->has(ka));
    EXPECT_EQ(store->get(kb), b);
    store->put_manifest("x", "{}", {ka});
    EXPECT_FALSE(store->has(kb)) << store->describe();
    EXPECT_EQ(store->get(ka), a);
    EXPECT_EQ(store->get_manifest("x").value(), "{}");
    EXPECT_EQ(store->manifests(), std::vector<std::string>{"x"});
    EXPECT_EQ(store->bytes("x"), 3u);
    store->remove_manifest("x");
    EXPECT_FALSE(store->get_manifest("x").has_value());
    EXPECT_FALSE(store->has(ka));
    for (const char* bad : {"", "../x", ".hidden", "a/b", "sp ace"})
      EXPECT_THROW(store->put(bad, a), Error) << bad;
    EXPECT_THROW(store->get("x/zz"), Error);
  }
  EXPECT_TRUE(valid_store_name("chat-1.user_2"));
  EXPECT_FALSE(valid_store_name(std::string(129, 'a')));
}

}  // namespace
}  // namespace lc
