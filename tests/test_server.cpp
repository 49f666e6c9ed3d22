// The OpenAI-compatible server, in-process on an ephemeral loopback port with stories260K, talked
// to with httplib::Client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine/generate.h"
#include "engine/session.h"
#include "server/server.h"
#include "support/block_sessions.h"
#include "support/paths.h"

namespace {

using lc::server::Server;
using lc::server::ServerOptions;
using nlohmann::json;

std::shared_ptr<const lc::Model> model() {
  static auto m = lc::Model::load(lc::test::shared_path("models/stories260K.gguf"));
  return m;
}

lc::SessionOptions session_options(int64_t batch = 0) {
  lc::SessionSpec spec;
  if (batch > 0) spec.batch = batch;
  return lc::resolve_session(*model(), spec);
}

// A server running on its own thread until destroyed.
class Running {
 public:
  explicit Running(ServerOptions o = {}, lc::SessionOptions so = session_options()) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.model_path = lc::test::shared_path("models/stories260K.gguf");
    server_ = std::make_unique<Server>(model(), so, o);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Running() {
    server_->stop();
    thread_.join();
  }
  std::unique_ptr<httplib::Client> client(const std::string& key = "") const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(120);
    if (!key.empty()) c->set_bearer_token_auth(key);
    return c;
  }
  int port() const { return port_; }
  Server& server() { return *server_; }

 private:
  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::thread thread_;
};

struct Answer {
  int status = 0;
  json body;
  std::string raw;
};

Answer post(httplib::Client& c, const std::string& path, const std::string& body,
            const httplib::Headers& headers = {}) {
  auto res = c.Post(path, headers, body, "application/json");
  EXPECT_TRUE(res) << "no answer from " << path;
  if (!res) return {};
  Answer a{res->status, json(), res->body};
  a.body = json::parse(res->body, nullptr, false);
  return a;
}

Answer post(httplib::Client& c, const std::string& path, const json& body) {
  return post(c, path, body.dump());
}

// The events of an SSE body: JSON objects, with "[DONE]" as a string; comments counted aside.
struct Events {
  std::vector<json> events;
  int comments = 0;
  bool done_last = false;
};

Events parse_sse(const std::string& body) {
  Events e;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "an event without its blank line";
    if (end == std::string::npos) break;
    const std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    e.done_last = false;
    if (ev.rfind(": ", 0) == 0) {
      ++e.comments;
      continue;
    }
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      e.done_last = true;
      continue;
    }
    e.events.push_back(json::parse(data));
  }
  return e;
}

lc::GenerateResult reference(const std::string& prompt, int64_t n) {
  lc::Session s(model(), session_options());
  lc::GenerateOptions g;
  g.n_predict = n;
  g.sampling.temperature = 0;
  return lc::generate(s, model()->tokenizer().encode(prompt, true), g);
}

TEST(Server, GreedyCompletionEqualsGenerate) {
  Running r;
  auto c = r.client();
  const lc::GenerateResult want = reference("Once upon a time", 40);
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["object"], "text_completion");
  EXPECT_EQ(a.body["model"], "stories260K.gguf");
  EXPECT_EQ(a.body["choices"][0]["text"], want.text);
  EXPECT_EQ(a.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(a.body["usage"]["prompt_tokens"], want.n_prompt);
  EXPECT_EQ(a.body["usage"]["completion_tokens"], want.tokens.size());
  EXPECT_EQ(a.body["usage"]["total_tokens"],
            want.n_prompt + static_cast<int64_t>(want.tokens.size()));
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  // The same tokens: tokenizing the text gives the ids generate() produced.
  Answer t = post(*c, "/detokenize", json{{"tokens", want.tokens}});
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body["content"], want.text);
}

TEST(Server, StreamingChunksConcatenateToTheSameText) {
  Running r;
  auto c = r.client();
  const lc::GenerateResult want = reference("Once upon a time", 30);
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", "Once upon a time"},
                       {"max_tokens", 30},
                       {"temperature", 0},
                       {"stream", true},
                       {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(a.status, 200) << a.raw;
  Events e = parse_sse(a.raw);
  EXPECT_TRUE(e.done_last) << "the stream ends with data: [DONE]";
  ASSERT_GE(e.events.size(), 3u);
  std::string text;
  std::string finish;
  for (const json& ev : e.events) {
    EXPECT_EQ(ev["object"], "text_completion");
    if (ev["choices"].empty()) continue;
    text += ev["choices"][0]["text"].get<std::string>();
    if (!ev["choices"][0]["finish_reason"].is_null()) finish = ev["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, want.text);
  EXPECT_EQ(finish, "length");
  const json& usage = e.events.back()["usage"];
  EXPECT_TRUE(e.events.back()["choices"].empty());
  EXPECT_EQ(usage["completion_tokens"], 30);
  EXPECT_EQ(usage["prompt_tokens"], want.n_prompt);
  EXPECT_EQ(usage["total_tokens"], want.n_prompt + 30);

  // Without include_usage there is no usage chunk.
  a = post(*c, "/v1/completions",
           json{{"prompt", "Once upon a time"}, {"max_tokens", 5}, {"stream", true}});
  e = parse_sse(a.raw);
  EXPECT_TRUE(e.done_last);
  for (const json& ev : e.events) EXPECT_FALSE(ev.contains("usage"));
}

TEST(Server, LogprobsOfEveryGeneratedToken) {
  Running r;
  auto c = r.client();
  const lc::GenerateResult want = reference("Once upon a time", 12);
  Answer a = post(
      *c, "/v1/completions",
      json{
          {"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}, {"logprobs", 3}});
  ASSERT_EQ(a.status, 200) << a.raw;
  const json& lp = a.body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 12u) << lp;
  std::string text;
  for (size_t i = 0; i < 12; ++i) {
    text += lp["tokens"][i].get<std::string>();
    const double p = lp["token_logprobs"][i];
    EXPECT_LE(p, 0.0);
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    double best = -1e30;
    for (const auto& [tok, q] : lp["top_logprobs"][i].items())
      best = std::max(best, q.get<double>());
    EXPECT_NEAR(p, best, 1e-6);
    EXPECT_EQ(lp["text_offset"][i], text.size() - lp["tokens"][i].get<std::string>().size());
  }
  EXPECT_EQ(text, want.text);

  // Streamed, in chat's form: one entry per generated token across the chunks.
  ServerOptions o;
  o.chat_template = "chatml";
  Running rc(o);
  auto cc = rc.client();
  a = post(*cc, "/v1/chat/completions",
           json{{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}},
                {"max_tokens", 9},
                {"temperature", 0.7},
                {"seed", 3},
                {"logprobs", true},
                {"top_logprobs", 2},
                {"stream", true},
                {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(a.status, 200) << a.raw;
  const Events e = parse_sse(a.raw);
  size_t entries = 0;
  for (const json& ev : e.events) {
    if (ev["choices"].empty() || ev["choices"][0]["logprobs"].is_null()) continue;
    for (const json& t : ev["choices"][0]["logprobs"]["content"]) {
      ++entries;
      EXPECT_EQ(t["top_logprobs"].size(), 2u);
      EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>() - 1e-6);
      EXPECT_TRUE(t["bytes"].is_array());
    }
  }
  EXPECT_EQ(entries, e.events.back()["usage"]["completion_tokens"].get<size_t>());
  // Asked for but not allowed: a 400 naming the field.
  a = post(*c, "/v1/completions", json{{"prompt", "Hi"}, {"logprobs", 9}});
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body["error"]["param"], "logprobs");
}

TEST(Server, ChatStreamsDeltasAndNeedsATemplate) {
  {
    Running r;  // stories260K has no chat template
    auto c = r.client();
    Answer a = post(*c, "/v1/chat/completions",
                    json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
    EXPECT_EQ(a.status, 400);
    EXPECT_EQ(a.body["error"]["code"], "no_chat_template");
    EXPECT_NE(a.body["error"]["message"].get<std::string>().find("chat template"),
              std::string::npos);
  }
  ServerOptions o;
  o.chat_template = "chatml";
  Running r(o);
  auto c = r.client();
  const json req = {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}},
                    {"max_tokens", 12},
                    {"temperature", 0}};
  Answer a = post(*c, "/v1/chat/completions", req);
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["object"], "chat.completion");
  EXPECT_EQ(a.body["choices"][0]["message"]["role"], "assistant");
  const std::string whole = a.body["choices"][0]["message"]["content"];
  json sreq = req;
  sreq["stream"] = true;
  Answer s = post(*c, "/v1/chat/completions", sreq);
  Events e = parse_sse(s.raw);
  EXPECT_TRUE(e.done_last);
  std::string text;
  ASSERT_FALSE(e.events.empty());
  EXPECT_EQ(e.events.front()["choices"][0]["delta"]["role"], "assistant");
  for (const json& ev : e.events) {
    EXPECT_EQ(ev["object"], "chat.completion.chunk");
    const json& d = ev["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  EXPECT_EQ(text, whole);
}

TEST(Server, StopStringsAndMaxTokens) {
  Running r;
  auto c = r.client();
  const lc::GenerateResult want = reference("Once upon a time", 40);
  const size_t cut = want.text.find("girl");
  ASSERT_NE(cut, std::string::npos) << want.text;
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", "Once upon a time"},
                       {"max_tokens", 40},
                       {"temperature", 0},
                       {"stop", {"girl", "zzz"}}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["choices"][0]["text"], want.text.substr(0, cut));
  EXPECT_EQ(a.body["choices"][0]["finish_reason"], "stop");

  a = post(*c, "/v1/completions",
           json{{"prompt", "Once upon a time"}, {"max_tokens", 7}, {"temperature", 0}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["usage"]["completion_tokens"], 7);
  EXPECT_EQ(a.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(a.body["choices"][0]["text"], reference("Once upon a time", 7).text);
}

TEST(Server, ApiKeyRequiredWhenSet) {
  ServerOptions o;
  o.api_key = "sekrit-key";
  Running r(o);
  const json body = {{"prompt", "Once"}, {"max_tokens", 2}};
  auto none = r.client();
  Answer a = post(*none, "/v1/completions", body);
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(a.body["error"]["code"], "invalid_api_key");
  auto wrong = r.client("sekrit-kex");
  EXPECT_EQ(post(*wrong, "/v1/completions", body).status, 401);
  auto shorter = r.client("sekrit");
  EXPECT_EQ(post(*shorter, "/v1/completions", body).status, 401);
  EXPECT_EQ(wrong->Get("/v1/models")->status, 401);
  auto right = r.client("sekrit-key");
  EXPECT_EQ(post(*right, "/v1/completions", body).status, 200);
  auto models = right->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "stories260K.gguf");
  auto health = none->Get("/health");  // health needs no key
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
}

TEST(Server, SessionFollowUpPrefillsOnlyNewTokens) {
  Running r;
  auto c = r.client();
  const std::string p1 = "Once upon a time";
  const std::string p2 = "Once upon a time there was a big dog named Max";
  Answer a =
      post(*c, "/v1/completions",
           json{{"prompt", p1}, {"max_tokens", 1}, {"temperature", 0}, {"session_id", "s1"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const int64_t n1 = a.body["usage"]["prompt_tokens"];

  a = post(*c, "/v1/completions",
           json{{"prompt", p2}, {"max_tokens", 30}, {"temperature", 0}, {"session_id", "s1"}});
  ASSERT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], n1);
  EXPECT_EQ(a.body["session_id"], "s1");
  Answer fresh =
      post(*c, "/v1/completions", json{{"prompt", p2}, {"max_tokens", 30}, {"temperature", 0}});
  ASSERT_EQ(fresh.status, 200);
  EXPECT_EQ(fresh.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(a.body["choices"][0]["text"], fresh.body["choices"][0]["text"]);
  EXPECT_EQ(a.body["usage"]["prompt_tokens"], fresh.body["usage"]["prompt_tokens"]);

  // With penalties too: they look back over what the session held before this request, so the
  // words of the first prompt stay penalised in the second.
  const std::string q1 = "Once upon a time there was a little girl named Lily. She loved to play";
  const std::string q2 = q1 + " outside. One day";
  json first = {{"prompt", q1},
                {"max_tokens", 1},
                {"temperature", 0},
                {"frequency_penalty", 2.0},
                {"presence_penalty", 2.0},
                {"session_id", "s3"}};
  ASSERT_EQ(post(*c, "/v1/completions", first).status, 200);
  json second = first;
  second["prompt"] = q2;
  second["max_tokens"] = 30;
  a = post(*c, "/v1/completions", second);
  EXPECT_GT(a.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 10);
  second.erase("session_id");
  fresh = post(*c, "/v1/completions", second);
  EXPECT_EQ(a.body["choices"][0]["text"], fresh.body["choices"][0]["text"]);

  // The header names a session too; a prompt that diverges keeps only the common prefix (here the
  // BOS token).
  a = post(*c, "/v1/completions", json{{"prompt", p1}, {"max_tokens", 1}}.dump(),
           {{"X-Session-Id", "s2"}});
  ASSERT_EQ(a.status, 200);
  a = post(*c, "/v1/completions", json{{"prompt", p2}, {"max_tokens", 1}}.dump(),
           {{"X-Session-Id", "s2"}});
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], n1);
  a = post(*c, "/v1/completions", json{{"prompt", "A cat"}, {"max_tokens", 1}}.dump(),
           {{"X-Session-Id", "s2"}});
  EXPECT_LE(a.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 1);
  // A prompt that goes back to a prefix of what the session holds reuses that prefix.
  a = post(*c, "/v1/completions", json{{"prompt", p2}, {"max_tokens", 1}}.dump(),
           {{"X-Session-Id", "s2"}});
  a = post(*c, "/v1/completions",
           json{{"prompt", p1}, {"max_tokens", 1}, {"temperature", 0}}.dump(),
           {{"X-Session-Id", "s2"}});
  EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], n1 - 1);
  const Answer p1_fresh =
      post(*c, "/v1/completions", json{{"prompt", p1}, {"max_tokens", 1}, {"temperature", 0}});
  EXPECT_EQ(a.body["choices"][0]["text"], p1_fresh.body["choices"][0]["text"]);
}

// An infllm session holding a document that formed blocks, then a prompt that diverges inside
// the blocks: the session rolls back to the common prefix (cached_tokens) and answers as a fresh
// session sent that prompt. The prefix ends where an execution block ends and every block is
// attended (topk beyond their count), so the answer does not depend on the representative scores
// the rollback restarts at zero: it is the same bit for bit. A streaming session cannot roll back
// that far and starts afresh.
TEST(Server, DivergingPromptRollsBackAnInfllmSession) {
  for (const lc::MemoryPolicy policy : {lc::MemoryPolicy::InfLLM, lc::MemoryPolicy::Streaming}) {
    lc::SessionSpec spec = lc::test::small_block_spec(policy);
    spec.ctx_train.reset();   // the file's
    spec.memory.topk = 1000;  // every block attended
    const lc::SessionOptions so = lc::resolve_session(*model(), spec);
    Running r(ServerOptions{}, so);
    auto c = r.client();
    std::vector<int32_t> doc{model()->tokenizer().bos()};
    for (int i = 1; i < 200; ++i) doc.push_back(3 + (i * 37) % 450);
    Answer a =
        post(*c, "/v1/completions",
             json{{"prompt", doc}, {"max_tokens", 1}, {"temperature", 0}, {"session_id", "d"}});
    ASSERT_EQ(a.status, 200) << a.raw;
    const int64_t cp = 112;  // 4 sinks, 7 blocks and a window
    std::vector<int32_t> p2(doc.begin(), doc.begin() + cp);
    for (int i = 0; i < 24; ++i) p2.push_back(5 + (i * 53) % 400);
    a = post(*c, "/v1/completions",
             json{{"prompt", p2}, {"max_tokens", 12}, {"temperature", 0}, {"session_id", "d"}});
    ASSERT_EQ(a.status, 200) << a.raw;
    const bool infllm = policy == lc::MemoryPolicy::InfLLM;
    EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], infllm ? cp : 0);
    lc::Session fresh(model(), so);
    lc::GenerateOptions g;
    g.n_predict = 12;
    g.sampling.temperature = 0;
    const lc::GenerateResult want = lc::generate(fresh, p2, g);
    EXPECT_EQ(a.body["choices"][0]["text"], want.text);
    EXPECT_EQ(a.body["usage"]["completion_tokens"], want.tokens.size());
  }
}

// Each client's three turns: the prompt grows by the answer and a new sentence.
std::vector<std::string> conversation(httplib::Client& c, int client, const std::string& session) {
  const std::vector<std::string> names = {"Tom", "Sue", "Max", "Lily", "Ben", "Mia", "Sam", "Tim"};
  std::string prompt =
      "Once upon a time there was a child named " + names[static_cast<size_t>(client)];
  std::vector<std::string> out;
  for (int turn = 0; turn < 3; ++turn) {
    Answer a = post(
        c, "/v1/completions",
        json{{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"session_id", session}});
    EXPECT_EQ(a.status, 200) << a.raw;
    if (a.status != 200) return out;
    const std::string text = a.body["choices"][0]["text"];
    out.push_back(text);
    prompt += text + " Then";
  }
  return out;
}

TEST(Server, ConcurrentClientsWithTheirOwnSessions) {
  ServerOptions o;
  o.parallel = 2;
  Running r(o);
  std::vector<std::vector<std::string>> sequential(8), concurrent(8);
  {
    auto c = r.client();
    for (int i = 0; i < 8; ++i)
      sequential[static_cast<size_t>(i)] = conversation(*c, i, "seq-" + std::to_string(i));
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      auto c = r.client();
      concurrent[static_cast<size_t>(i)] = conversation(*c, i, "par-" + std::to_string(i));
    });
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(sequential[static_cast<size_t>(i)].size(), 3u);
    EXPECT_EQ(concurrent[static_cast<size_t>(i)], sequential[static_cast<size_t>(i)])
        << "client " << i;
  }
}

TEST(Server, MalformedRequestsOverHttp) {
  Running r;
  auto c = r.client();
  struct Row {
    std::string path, body;
    int status;
    std::string code, param;
  };
  const std::vector<Row> rows = {
      {"/v1/completions", "{", 400, "invalid_json", ""},
      {"/v1/completions", "\"x\"", 400, "invalid_type", ""},
      {"/v1/completions", "{\"prompt\": \"\xff\"}", 400, "invalid_utf8", ""},
      {"/v1/completions", R"({"prompt": "x", "n": 2})", 400, "unsupported_value", "n"},
      {"/v1/completions", R"({"prompt": "x", "temperature": "0"})", 400, "invalid_type",
       "temperature"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 0})", 400, "invalid_value",
       "max_tokens"},
      {"/v1/completions", R"({"prompt": [999999]})", 400, "invalid_value", "prompt[0]"},
      {"/v1/completions", R"({"prompt": "x", "model": "gpt-4"})", 404, "model_not_found", "model"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "invalid_type", "messages"},
      {"/v1/chat/completions", R"({"prompt": "hi"})", 400, "missing_field", "messages"},
      {"/v1/nothing", "{}", 404, "not_found", ""},
      {"/tokenize", R"({"content": 3})", 400, "invalid_type", "content"},
      {"/detokenize", R"({"tokens": [1, -1]})", 400, "invalid_value", "tokens[1]"},
  };
  for (const Row& row : rows) {
    Answer a = post(*c, row.path, row.body);
    EXPECT_EQ(a.status, row.status) << row.path << " " << row.body << ": " << a.raw;
    EXPECT_EQ(a.body["error"]["code"], row.code) << row.body << ": " << a.raw;
    EXPECT_EQ(a.body["error"]["param"], row.param.empty() ? json(nullptr) : json(row.param))
        << row.body;
    EXPECT_TRUE(a.body["error"]["message"].is_string());
  }
  auto g = c->Get("/nowhere");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 404);
  // The request named the model by its id or path: fine.
  Answer ok = post(*c, "/v1/completions",
                   json{{"prompt", "x"}, {"max_tokens", 1}, {"model", "stories260K.gguf"}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

TEST(Server, TokenizeDetokenizeAndProps) {
  Running r;
  auto c = r.client();
  Answer t = post(*c, "/tokenize", json{{"content", "Once upon a time"}});
  ASSERT_EQ(t.status, 200) << t.raw;
  const std::vector<int32_t> want = model()->tokenizer().encode("Once upon a time", false);
  EXPECT_EQ(t.body["tokens"].get<std::vector<int32_t>>(), want);
  Answer d = post(*c, "/detokenize", json{{"tokens", want}});
  EXPECT_EQ(d.body["content"], "Once upon a time");
  auto p = c->Get("/props");
  ASSERT_TRUE(p);
  const json props = json::parse(p->body);
  EXPECT_EQ(props["model_path"], lc::test::shared_path("models/stories260K.gguf"));
  EXPECT_EQ(props["n_ctx_train"], session_options().trained_ctx);
  EXPECT_TRUE(props["rope"].is_string());
  EXPECT_FALSE(props["settings"].empty());
}

// A long prompt of token ids (prefilled in many chunks).
json long_prompt(int n) {
  std::vector<int32_t> ids = model()->tokenizer().encode(
      "Once upon a time there was a little girl named Lily. She loved to play outside.", true);
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < n) out.insert(out.end(), ids.begin() + 1, ids.end());
  out.resize(static_cast<size_t>(n));
  out[0] = model()->tokenizer().bos();
  return out;
}

TEST(Server, StreamPingsWhileAPromptIsPrefilled) {
  ServerOptions o;
  o.ping_seconds = 0.001;
  Running r(o, session_options(16));
  auto c = r.client();
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", long_prompt(600)}, {"max_tokens", 2}, {"stream", true}});
  ASSERT_EQ(a.status, 200) << a.raw;
  Events e = parse_sse(a.raw);
  EXPECT_GT(e.comments, 0) << "': ping' comments while prefilling";
  EXPECT_TRUE(e.done_last);
}

TEST(Server, MetricsCountRequestsAndTokens) {
  Running r;
  auto c = r.client();
  post(*c, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 7}});
  post(*c, "/v1/completions",
       json{{"prompt", "Once upon a time"}, {"max_tokens", 3}, {"stream", true}});
  // A streamed request's slot is released once its stream has closed, which may be just after
  // the client has read the last event: wait (boundedly) for the gauges to settle.
  std::string t;
  for (int i = 0; i < 100; ++i) {
    auto m = c->Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->status, 200);
    t = m->body;
    if (t.find("\nlongctx_requests_running 0\n") != std::string::npos &&
        t.find("\nlongctx_requests_total 2\n") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(t.find("\nlongctx_requests_total 2\n"), std::string::npos) << t;
  // The second request found the first one's session in the prompt cache: 4 of its 5 tokens.
  EXPECT_NE(t.find("\nlongctx_prompt_tokens_total 6\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nlongctx_cached_tokens_total 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nlongctx_generated_tokens_total 10\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nlongctx_requests_running 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE longctx_requests_total counter"), std::string::npos) << t;
  // Both requests generated a token: two observations of the time to the first one.
  EXPECT_NE(t.find("\nlongctx_time_to_first_token_seconds_count 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nlongctx_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("\nlongctx_generation_tokens_per_second "), std::string::npos) << t;
  EXPECT_NE(t.find("\nlongctx_kv_bytes_in_ram "), std::string::npos) << t;
  // Errors are counted by status.
  post(*c, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", -1}});
  c->Get("/no/such/endpoint");
  t = c->Get("/metrics")->body;
  EXPECT_NE(t.find("longctx_request_errors_total{status=\"400\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("longctx_request_errors_total{status=\"404\"} 1\n"), std::string::npos) << t;
}

TEST(Server, StreamReportsPromptProgressWhenAsked) {
  Running r(ServerOptions{}, session_options(64));
  auto c = r.client();
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", long_prompt(600)},
                       {"max_tokens", 3},
                       {"temperature", 0},
                       {"stream", true},
                       {"return_progress", true}});
  ASSERT_EQ(a.status, 200) << a.raw;
  Events e = parse_sse(a.raw);
  EXPECT_TRUE(e.done_last);
  std::vector<int64_t> processed;
  std::string text;
  for (const json& ev : e.events) {
    if (ev.contains("prompt_progress")) {
      EXPECT_TRUE(ev["choices"].empty());
      EXPECT_EQ(ev["prompt_progress"]["total"], 600);
      EXPECT_EQ(ev["prompt_progress"]["cache"], 0);
      processed.push_back(ev["prompt_progress"]["processed"]);
    } else if (!ev["choices"].empty()) {
      text += ev["choices"][0]["text"].get<std::string>();
    }
  }
  ASSERT_GE(processed.size(), 2u);
  EXPECT_TRUE(std::is_sorted(processed.begin(), processed.end()));
  EXPECT_EQ(processed.back(), 600);
  Answer plain = post(*c, "/v1/completions",
                      json{{"prompt", long_prompt(600)}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(text, plain.body["choices"][0]["text"]);
}

TEST(Server, BusyServerAnswers503WithRetryAfter) {
  ServerOptions o;
  o.parallel = 1;
  o.queue = 0;
  Running r(o);
  std::atomic<bool> finished{false};
  std::thread slow([&] {
    auto c = r.client();
    Answer a;
    do {  // the small requests below may hold the one slot when this one arrives
      a = post(*c, "/v1/completions", json{{"prompt", long_prompt(6000)}, {"max_tokens", 1}});
    } while (a.status == 503);
    EXPECT_EQ(a.status, 200) << a.raw;
    finished = true;
  });
  bool busy = false;
  auto c = r.client();
  while (!finished && !busy) {
    auto res = c->Post("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 1}}.dump(),
                       "application/json");
    ASSERT_TRUE(res);
    if (res->status == 503) {
      busy = true;
      EXPECT_EQ(res->get_header_value("Retry-After"), "1");
      EXPECT_EQ(json::parse(res->body)["error"]["code"], "server_busy");
    } else {
      EXPECT_EQ(res->status, 200);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  slow.join();
  EXPECT_TRUE(busy) << "no request was turned away while the long one ran";
}

TEST(Server, LongPrefillDoesNotStallAShortRequest) {
  ServerOptions o;
  o.parallel = 2;
  Running r(o, session_options(64));
  std::atomic<bool> long_started{false}, long_done{false};
  std::thread slow([&] {
    auto c = r.client();
    json body = {{"prompt", long_prompt(12000)},
                 {"max_tokens", 1},
                 {"stream", true},
                 {"return_progress", true}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      long_started = true;
      return true;
    };
    EXPECT_TRUE(c->send(req));
    long_done = true;
  });
  while (!long_started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The short request takes turns with the long prefill, step by step: it is answered first.
  auto c = r.client();
  Answer a = post(*c, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 8}});
  EXPECT_EQ(a.status, 200) << a.raw;
  EXPECT_FALSE(long_done) << "the short request waited for the whole long prefill";
  slow.join();
}

TEST(Server, SessionBudgetsDropFromRamAndDeleteFromTheFolder) {
  char t[] = "/tmp/lc-budget-XXXXXX";
  const std::string dir = ::mkdtemp(t);
  ServerOptions o;
  o.session_dir = dir;
  o.session_ram = 1;  // every idle session leaves RAM, to be loaded from the folder again
  {
    Running r(o);
    auto c = r.client();
    const std::string p = "Once upon a time there was a dog";
    Answer a;
    for (const char* id : {"a", "b", "a"}) {
      a = post(*c, "/v1/completions",
               json{{"prompt", p}, {"max_tokens", 2}, {"temperature", 0}, {"session_id", id}});
      ASSERT_EQ(a.status, 200) << a.raw;
    }
    // "a" left RAM when "b" was done; its second request found it in the folder.
    EXPECT_GT(a.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 3);
    auto m = c->Get("/metrics");
    EXPECT_NE(m->body.find("\nlongctx_sessions 1\n"), std::string::npos) << m->body;
    EXPECT_NE(m->body.find("\nlongctx_sessions_saved 2\n"), std::string::npos) << m->body;
  }
  o.session_budget = 1;  // the folder keeps only the session saved last
  {
    Running r(o);
    auto c = r.client();
    Answer a = post(*c, "/v1/completions",
                    json{{"prompt", "Once upon a time there was a dog"},
                         {"max_tokens", 2},
                         {"temperature", 0},
                         {"session_id", "a"}});
    EXPECT_GT(a.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 3);
    a = post(*c, "/v1/completions",
             json{{"prompt", "A cat"}, {"max_tokens", 2}, {"session_id", "c"}});
    auto list = json::parse(c->Get("/v1/sessions")->body);
    std::vector<std::string> ids;
    for (const json& s : list["data"])
      if (s.contains("saved")) ids.push_back(s["id"]);
    EXPECT_EQ(ids, std::vector<std::string>{"c"}) << list;
  }
  std::filesystem::remove_all(dir);
}

TEST(Server, ClientGoingAwayCancelsItsGeneration) {
  ServerOptions o;
  o.ping_seconds = 0.001;
  Running r(o, session_options(16));
  const json prompt = long_prompt(4000);
  const json body = {{"prompt", prompt}, {"max_tokens", 5}, {"stream", true}, {"session_id", "d"}};
  auto c = r.client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) {
    return false;  // hang up at the first bytes: the prompt is still being prefilled
  };
  c->send(req);
  // The session kept the chunks finished before the cancellation: the same prompt again extends
  // them (a finished generation would hold more than the prompt, and the session would restart).
  json again = body;
  again.erase("stream");
  Answer a = post(*c, "/v1/completions", again);
  ASSERT_EQ(a.status, 200) << a.raw;
  const int64_t cached = a.body["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_GT(cached, 0);
  EXPECT_LT(cached, 4000);
}

// Clients that send part of a request and stall, or bytes that are not HTTP, hold a connection
// each but neither wedge the server nor delay another client's request.
TEST(Server, SlowAndGarbageClientsDoNotBlockOthers) {
  Running r;
  auto connect_raw = [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(r.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return fd;
  };
  std::vector<int> slow;
  for (int i = 0; i < 16; ++i) {
    const int fd = connect_raw();
    const std::string part =
        i % 2 ? "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro"
              : "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    EXPECT_EQ(::send(fd, part.data(), part.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(part.size()));
    slow.push_back(fd);
  }
  const int junk = connect_raw();
  static const char kJunk[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n";
  const std::string bytes(kJunk, sizeof kJunk - 1);  // a TLS hello's first bytes, then text
  ::send(junk, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  auto c = r.client();
  const auto t0 = std::chrono::steady_clock::now();
  Answer a = post(*c, "/v1/completions",
                  json{{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
  EXPECT_EQ(a.status, 200) << a.raw;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
  for (int fd : slow) ::close(fd);
  ::close(junk);
  auto h = c->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST(Server, PortInUseIsAnError) {
  Running r;
  ServerOptions o;
  o.port = r.port();
  Server second(model(), session_options(), o);
  EXPECT_THROW(second.bind(), lc::Error);
}

TEST(Server, HealthIs503WhileTheModelLoads) {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  Server srv(o);
  const int port = srv.bind();
  std::thread serving([&srv] { srv.run(); });
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_EQ(json::parse(h->body)["status"], "loading");
  EXPECT_EQ(h->get_header_value("Retry-After"), "1");
  Answer a = post(c, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 2}});
  EXPECT_EQ(a.status, 503) << a.raw;
  EXPECT_EQ(a.body["error"]["code"], "model_loading");
  EXPECT_FALSE(srv.ready());
  srv.attach(model(), session_options());
  EXPECT_TRUE(srv.ready());
  h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  a = post(c, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(a.status, 200) << a.raw;
  srv.stop();
  serving.join();
}

TEST(Server, PromptBeyondTheSessionContextIsContextLengthExceeded) {
  lc::SessionOptions so = session_options();
  so.memory.max_ctx = 40;
  Running r({}, so);
  auto c = r.client();
  std::string long_prompt;
  for (int i = 0; i < 20; ++i) long_prompt += "Once upon a time ";
  Answer a = post(*c, "/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 4}});
  ASSERT_EQ(a.status, 400) << a.raw;
  EXPECT_EQ(a.body["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(a.body["error"]["param"], "prompt");
  // A prompt that fits: the answer stops where the context is full.
  a = post(*c, "/v1/completions",
           json{{"prompt", "Once upon a time"}, {"max_tokens", 100}, {"temperature", 0}});
  ASSERT_EQ(a.status, 200) << a.raw;
  const int64_t total = a.body["usage"]["total_tokens"];
  EXPECT_LE(total, 40);
  if (a.body["choices"][0]["finish_reason"] == "length") {
    EXPECT_EQ(total, 40);
  }
}

}  // namespace
