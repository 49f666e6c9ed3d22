// Two replicas (two SessionRegistry objects, each with its own connection to the store) sharing
// one session store under a byte budget: sessions are deleted least recently used first in the
// store's order, whichever replica saved or used them, and never while a replica holds the
// session's lease. For dir: (a folder; its lock files) and, where redis-server is installed, for
// Redis (a redis-server started by the test on a loopback port). A save cut short leaves nothing
// behind after the session's next save.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/session_spec.h"
#include "model/model.h"
#include "server/session_store.h"
#include "server/sessions.h"
#include "support/paths.h"

namespace lc::server {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const Model> stories() {
  static auto m = Model::load(test::shared_path("models/stories260K.gguf"));
  return m;
}

SessionOptions options() {
  SessionSpec spec;
  spec.ctx_train = 512;
  spec.batch = 16;
  return resolve_session(*stories(), spec);
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A redis-server on a loopback port with a throw-away folder, stopped at the end.
class Redis {
 public:
  explicit Redis(const std::string& dir) : port_(free_port()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      const std::string port = std::to_string(port_);
      ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind",
              "127.0.0.1", "--dir", dir.c_str(), "--save", "", "--appendonly", "no", "--loglevel",
              "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      try {
        open_session_store(url());
        return;
      } catch (const Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    }
    ADD_FAILURE() << "redis-server did not start";
  }
  ~Redis() {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  // What redis-cli answers to a command (its output, trailing newline removed).
  std::string cli(const std::string& args) const {
    const std::string cmd = "redis-cli -p " + std::to_string(port_) + " " + args;
    std::string out;
    if (std::FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof buf, f)) out += buf;
      ::pclose(f);
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

struct TempDir : lc::test::ScopedTempDir {
  TempDir() : ScopedTempDir("lc-store") {}
};

std::vector<int32_t> prompt(int salt) {
  std::vector<int32_t> t{stories()->tokenizer().bos()};
  for (int i = 0; i < 40; ++i) t.push_back(100 + (i * 7 + salt * 13) % 200);
  return t;
}

// One request of session `id` on a replica: its prompt fed, then saved (given back).
void request(SessionRegistry& r, const std::string& id, int salt) {
  const std::vector<int32_t> ids = prompt(salt);
  auto lease = r.named(id, ids);
  lease->session().eval(ids.data() + lease->cached,
                        static_cast<int64_t>(ids.size()) - lease->cached);
  r.give_back(std::move(lease), true);
  // Apart in time, so that the store's order of last use is unambiguous.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
}

bool saved(const ObjectStore& s, const std::string& name) {
  return s.get_manifest(name).has_value();
}

void budget_across_replicas(const std::string& url) {
  // How many bytes one session takes in the store.
  uint64_t one = 0;
  {
    SessionRegistry probe(stories(), options(), {}, open_session_store(url));
    request(probe, "probe", 0);
    one = probe.store()->bytes("probe");
    ASSERT_GT(one, 0u);
    EXPECT_TRUE(probe.remove("probe"));
  }
  // Room for two sessions and a half.
  SessionRegistry::Limits limits;
  limits.store_bytes = one * 5 / 2;
  SessionRegistry a(stories(), options(), limits, open_session_store(url));
  SessionRegistry b(stories(), options(), limits, open_session_store(url));
  const ObjectStore& store = *a.store();

  request(a, "s1", 1);  // saved by A
  request(b, "s2", 2);  // saved by B: A never saw it
  request(b, "s1", 3);  // s1 used again, on B: s2 is now the least recently used
  ASSERT_TRUE(saved(store, "s1"));
  ASSERT_TRUE(saved(store, "s2"));
  request(a, "s3", 4);  // over the budget: s2 goes, not s1 (which A saved first)
  EXPECT_TRUE(saved(store, "s1"));
  EXPECT_FALSE(saved(store, "s2"));
  EXPECT_TRUE(saved(store, "s3"));

  // B holds s1 (a request in progress) while A goes over the budget: s1, the least recently
  // used, is skipped because its lease is held; s3 goes instead.
  {
    const std::vector<int32_t> ids = prompt(5);
    auto held = b.named("s1", ids);
    request(a, "s4", 6);
    EXPECT_TRUE(saved(store, "s1"));
    EXPECT_FALSE(saved(store, "s3"));
    EXPECT_TRUE(saved(store, "s4"));
    held->session().eval(ids.data() + held->cached,
                         static_cast<int64_t>(ids.size()) - held->cached);
    b.give_back(std::move(held), true);  // s1 saved again: the most recently used
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  request(b, "s5", 7);  // over again: s4 is the least recently used now
  EXPECT_TRUE(saved(store, "s1"));
  EXPECT_FALSE(saved(store, "s4"));
  EXPECT_TRUE(saved(store, "s5"));

  // A session deleted by one replica while another holds it in RAM starts afresh there (its
  // RAM copy is no longer the store's state), with no error.
  const std::vector<int32_t> ids = prompt(2);
  auto again = b.named("s2", ids);
  EXPECT_EQ(again->cached, 0);
  b.give_back(std::move(again), true);
}

TEST(SessionStoreBudget, DirSharedByTwoReplicasEvictsByStoreOrderUnderLease) {
  TempDir d;
  budget_across_replicas("dir:" + d.path + "/sessions");
}

TEST(SessionStoreBudget, RedisSharedByTwoReplicasEvictsByStoreOrderUnderLease) {
  if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "redis-server is missing";
  TempDir d;
  Redis redis(d.path);
  budget_across_replicas(redis.url());
}

// A save cut short (its writer killed, or the store stopped, in the middle) leaves parts of
// objects that no manifest references; the session's next save deletes them.
TEST(SessionStoreCleanup, DirNextSaveDeletesTemporaryFilesOfACutWrite) {
  TempDir d;
  const std::string dir = d.path + "/sessions";
  SessionRegistry r(stories(), options(), {}, open_session_store("dir:" + dir));
  request(r, "s1", 1);
  const std::string obj = dir + "/objects/s1/0123456789abcdef0123456789abcdef.tmp-AbC123";
  const std::string man = dir + "/manifests/s1.json.tmp-XyZ789";
  std::FILE* f = std::fopen(obj.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  f = std::fopen(man.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  request(r, "s1", 2);
  EXPECT_FALSE(fs::exists(obj));
  EXPECT_FALSE(fs::exists(man));
}

TEST(SessionStoreCleanup, RedisNextSaveDeletesChunksOfACutWrite) {
  if (::access("/usr/bin/redis-server", X_OK) != 0 || ::access("/usr/bin/redis-cli", X_OK) != 0)
    GTEST_SKIP() << "redis-server or redis-cli is missing";
  TempDir d;
  Redis redis(d.path);
  SessionRegistry r(stories(), options(), {}, open_session_store(redis.url()));
  request(r, "s1", 1);
  // What put_object leaves when cut after two chunks: the key listed, chunks, no count.
  const std::string key = "s1/0123456789abcdef0123456789abcdef";
  redis.cli("SADD longctx:ns:s1 " + key);
  redis.cli("SET longctx:obj:" + key + ":0 part0");
  redis.cli("SET longctx:obj:" + key + ":1 part1");
  ASSERT_EQ(redis.cli("EXISTS longctx:obj:" + key + ":1"), "1");
  request(r, "s1", 2);
  EXPECT_EQ(redis.cli("EXISTS longctx:obj:" + key + ":0"), "0");
  EXPECT_EQ(redis.cli("EXISTS longctx:obj:" + key + ":1"), "0");
  EXPECT_EQ(redis.cli("SISMEMBER longctx:ns:s1 " + key), "0");
  // The session itself is intact: a registry that never saw it loads it.
  SessionRegistry other(stories(), options(), {}, open_session_store(redis.url()));
  const std::vector<int32_t> ids = prompt(2);
  auto lease = other.named("s1", ids);
  EXPECT_EQ(lease->cached, static_cast<int64_t>(ids.size()) - 1);
  other.give_back(std::move(lease), true);
}

}  // namespace
}  // namespace lc::server
