// Durable sessions through the real command: `longctx serve --session-dir DIR` killed with SIGKILL
// mid-conversation and started again continues each session exactly as a server that never
// stopped (full memory, and infllm with blocks spilled to disk); sessions are listed, described and
// deleted; a session whose saved state is corrupt is an error for that session alone; a full disk
// fails the request with 503 naming the problem and keeps the session's last saved state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/paths.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// `longctx serve` in a child process, waited for until /health answers.
class Process {
 public:
  Process(const std::string& dir, const std::vector<std::string>& memory) : port_(free_port()) {
    std::vector<std::string> args = {LONGCTX_BINARY,
                                     "serve",
                                     "-m",
                                     lc::test::shared_path("models/stories260K.gguf"),
                                     "--port",
                                     std::to_string(port_),
                                     "--session-dir",
                                     dir,
                                     "--threads",
                                     "1"};
    args.insert(args.end(), memory.begin(), memory.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      httplib::Client c("127.0.0.1", port_);
      if (auto r = c.Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the server did not start";
  }
  ~Process() { kill(SIGTERM); }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(120);
    return c;
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

struct TempDir : lc::test::ScopedTempDir {
  TempDir() : ScopedTempDir("lc-restart") {}
};

json complete(httplib::Client& c, const std::string& session, const std::string& prompt) {
  const json body = {
      {"prompt", prompt}, {"max_tokens", 10}, {"temperature", 0}, {"session_id", session}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body, nullptr, false);
}

// Turn t's prompt: the story so far, the last answer and a new sentence.
std::string next_prompt(const std::string& so_far, const json& answer, int turn) {
  static const char* kLines[] = {" The dog ran to the park.", " Then the sun came out.",
                                 " Mom said it was time to eat.", " They all went home."};
  return so_far + answer["choices"][0]["text"].get<std::string>() + kLines[turn % 4];
}

void same_continuation_after_sigkill(const std::vector<std::string>& memory) {
  TempDir a, b;
  std::vector<std::string> want;  // every turn of a server that never stops
  {
    Process p(a.path, memory);
    auto c = p.client();
    std::string prompt = "Once upon a time, there was a little girl named Lily.";
    for (int t = 0; t < 4; ++t) {
      const json r = complete(*c, "chat", prompt);
      want.push_back(r["choices"][0]["text"]);
      prompt = next_prompt(prompt, r, t);
    }
  }
  std::string prompt = "Once upon a time, there was a little girl named Lily.";
  {
    Process p(b.path, memory);
    auto c = p.client();
    for (int t = 0; t < 2; ++t) {
      const json r = complete(*c, "chat", prompt);
      EXPECT_EQ(r["choices"][0]["text"], want[static_cast<size_t>(t)]);
      prompt = next_prompt(prompt, r, t);
    }
    p.kill(SIGKILL);
  }
  Process p(b.path, memory);
  auto c = p.client();
  for (int t = 2; t < 4; ++t) {
    const json r = complete(*c, "chat", prompt);
    EXPECT_EQ(r["choices"][0]["text"], want[static_cast<size_t>(t)]) << "turn " << t;
    // Only the new text was read: the session came back from the folder.
    EXPECT_GT(r["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 20);
    prompt = next_prompt(prompt, r, t);
  }
}

TEST(ServerRestart, FullMemoryContinuesAfterSigkill) { same_continuation_after_sigkill({}); }

TEST(ServerRestart, InfllmWithSpilledBlocksContinuesAfterSigkill) {
  same_continuation_after_sigkill({"--memory", "infllm", "--n-local", "32", "--n-init", "4",
                                   "--block-size", "8", "--exec-block", "16", "--topk", "2",
                                   "--mem-budget", "16K"});
}

TEST(ServerRestart, SessionsAreListedDescribedDeletedAndCorruptionStaysLocal) {
  TempDir d;
  Process p(d.path, {});
  auto c = p.client();
  complete(*c, "one", "Once upon a time");
  complete(*c, "two", "The cat sat on the mat");
  auto r = c->Get("/v1/sessions");
  ASSERT_TRUE(r);
  json list = json::parse(r->body);
  ASSERT_EQ(list["data"].size(), 2u) << r->body;
  EXPECT_EQ(list["data"][0]["id"], "one");
  EXPECT_GT(list["data"][0]["saved"]["bytes"].get<int64_t>(), 0);
  r = c->Get("/v1/sessions/two");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GT(json::parse(r->body)["tokens"].get<int64_t>(), 5);
  EXPECT_EQ(c->Get("/v1/sessions/nope")->status, 404);
  p.kill(SIGKILL);

  // Corrupt every object of session "one": after a restart it is an error naming the problem,
  // while "two" continues.
  for (const auto& e : fs::directory_iterator(d.path + "/objects/one")) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.put('\x7f');
  }
  Process q(d.path, {});
  auto c2 = q.client();
  auto bad = c2->Post(
      "/v1/completions",
      json{{"prompt", "Once upon a time"}, {"max_tokens", 2}, {"session_id", "one"}}.dump(),
      "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 500);
  const json err = json::parse(bad->body);
  EXPECT_EQ(err["error"]["code"], "session_corrupt") << bad->body;
  EXPECT_NE(err["error"]["message"].get<std::string>().find("corrupt"), std::string::npos);
  const json ok = complete(*c2, "two", "The cat sat on the mat. Then");
  EXPECT_GT(ok["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 5);
  // Deleting the broken session lets it start afresh.
  auto del = c2->Delete("/v1/sessions/one");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200) << del->body;
  EXPECT_FALSE(fs::exists(d.path + "/manifests/one.json"));
  EXPECT_EQ(
      complete(*c2, "one", "Once upon a time")["usage"]["prompt_tokens_details"]["cached_tokens"],
      0);
  EXPECT_EQ(c2->Delete("/v1/sessions/nope")->status, 404);
}

// The session folder on a small tmpfs (needs root to mount; skipped otherwise), filled up after
// the first turn: the second turn's save fails with 503 naming the problem, the session's saved
// state stays the first turn's, and once there is room again the second turn gives the same answer
// as a server whose disk never filled.
TEST(ServerRestart, FullDiskAnswers503AndKeepsTheLastSavedState) {
  TempDir d;
  const std::string mnt = d.path + "/small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs (not root?): " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string first = "Once upon a time, there was a little girl named Lily.";
  std::string second;
  json want;  // the second turn of a server whose disk never fills
  {
    TempDir ref;
    Process p(ref.path, {});
    auto c = p.client();
    second = next_prompt(first, complete(*c, "s", first), 0);
    want = complete(*c, "s", second);
  }
  Process p(mnt + "/sessions", {});
  auto c = p.client();
  complete(*c, "s", first);
  const int64_t saved_tokens = json::parse(c->Get("/v1/sessions/s")->body)["saved"]["tokens"];
  ASSERT_GT(saved_tokens, 5);
  // Fill the disk.
  const std::string filler = mnt + "/filler";
  {
    std::FILE* f = std::fopen(filler.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::vector<char> block(4096, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  const json body = {
      {"prompt", second}, {"max_tokens", 10}, {"temperature", 0}, {"session_id", "s"}};
  auto r = c->Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  const json err = json::parse(r->body, nullptr, false);
  EXPECT_EQ(err["error"]["code"], "session_store_unavailable") << r->body;
  EXPECT_NE(r->body.find("No space left on device"), std::string::npos) << r->body;
  // The saved state is still the first turn's.
  EXPECT_EQ(json::parse(c->Get("/v1/sessions/s")->body)["saved"]["tokens"], saved_tokens);
  // Room again: the second turn continues from it, as if the disk had never filled.
  fs::remove(filler);
  const json got = complete(*c, "s", second);
  EXPECT_EQ(got["choices"][0]["text"], want["choices"][0]["text"]);
  EXPECT_EQ(got["usage"]["prompt_tokens_details"]["cached_tokens"],
            want["usage"]["prompt_tokens_details"]["cached_tokens"]);
}

}  // namespace
