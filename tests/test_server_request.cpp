// Parsing and validation of the server's request bodies: a table of malformed requests with the
// exact status, code and field of each answer, and the typed request of well-formed ones.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/request.h"

namespace {

using lc::server::CompletionRequest;
using lc::server::Endpoint;
using lc::server::parse_completion_request;
using lc::server::RequestError;

struct Bad {
  Endpoint endpoint;
  std::string body;
  int status;
  std::string code;
  std::string param;
};

constexpr Endpoint kChat = Endpoint::ChatCompletions;
constexpr Endpoint kText = Endpoint::Completions;

const std::string kMsgs = R"("messages": [{"role": "user", "content": "Hi"}])";

std::string chat(const std::string& extra) { return "{" + kMsgs + ", " + extra + "}"; }
std::string text(const std::string& extra) { return R"({"prompt": "Once", )" + extra + "}"; }

std::string nested(int depth) {
  return R"({"prompt": "x", "a": )" + std::string(static_cast<size_t>(depth), '[') +
         std::string(static_cast<size_t>(depth), ']') + "}";
}

const std::vector<Bad>& bad_requests() {
  static const std::vector<Bad> t = {
      {kChat, "", 400, "invalid_json", ""},
      {kChat, "{", 400, "invalid_json", ""},
      {kChat, R"({"messages": [}")", 400, "invalid_json", ""},
      {kChat, "[1, 2]", 400, "invalid_type", ""},
      {kChat, "\"text\"", 400, "invalid_type", ""},
      {kChat, "{\"messages\": \"\xff\xfe\"}", 400, "invalid_utf8", ""},
      {kChat, "{\"messages\": \"\xc0\xaf\"}", 400, "invalid_utf8", ""},      // overlong '/'
      {kChat, "{\"messages\": \"\xed\xa0\x80\"}", 400, "invalid_utf8", ""},  // a surrogate
      {kText, nested(33), 400, "too_deep", ""},
      {kText, std::string(lc::server::kMaxBodyBytes + 1, ' '), 413, "body_too_large", ""},
      {kChat, "{}", 400, "missing_field", "messages"},
      {kChat, R"({"messages": {}})", 400, "invalid_type", "messages"},
      {kChat, R"({"messages": []})", 400, "invalid_value", "messages"},
      {kChat, R"({"messages": [1]})", 400, "invalid_type", "messages[0]"},
      {kChat, R"({"messages": [{"content": "x"}]})", 400, "missing_field", "messages[0].role"},
      {kChat, R"({"messages": [{"role": "robot", "content": "x"}]})", 400, "invalid_value",
       "messages[0].role"},
      {kChat, R"({"messages": [{"role": "user"}]})", 400, "missing_field", "messages[0].content"},
      {kChat, R"({"messages": [{"role": "user", "content": 5}]})", 400, "invalid_type",
       "messages[0].content"},
      {kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400,
       "unsupported_value", "messages[0].content[0].type"},
      {kChat, chat(R"("model": 3)"), 400, "invalid_type", "model"},
      {kText, "{}", 400, "missing_field", "prompt"},
      {kText, R"({"prompt": 7})", 400, "invalid_type", "prompt"},
      {kText, R"({"prompt": []})", 400, "invalid_value", "prompt"},
      {kText, R"({"prompt": ["a", "b"]})", 400, "unsupported_value", "prompt"},
      {kText, R"({"prompt": [1, -2]})", 400, "invalid_value", "prompt[1]"},
      {kText, R"({"prompt": [1, "x"]})", 400, "invalid_type", "prompt[1]"},
      {kText, text(R"("max_tokens": "10")"), 400, "invalid_type", "max_tokens"},
      {kText, text(R"("max_tokens": 1.5)"), 400, "invalid_type", "max_tokens"},
      {kText, text(R"("max_tokens": 0)"), 400, "invalid_value", "max_tokens"},
      {kText, text(R"("max_tokens": -3)"), 400, "invalid_value", "max_tokens"},
      {kChat, chat(R"("max_completion_tokens": 0)"), 400, "invalid_value", "max_completion_tokens"},
      {kText, text(R"("temperature": "hot")"), 400, "invalid_type", "temperature"},
      {kText, text(R"("temperature": 2.5)"), 400, "invalid_value", "temperature"},
      {kText, text(R"("temperature": -0.1)"), 400, "invalid_value", "temperature"},
      {kText, text(R"("top_p": 0)"), 400, "invalid_value", "top_p"},
      {kText, text(R"("top_p": 1.1)"), 400, "invalid_value", "top_p"},
      {kText, text(R"("top_k": -1)"), 400, "invalid_value", "top_k"},
      {kText, text(R"("top_k": 2.5)"), 400, "invalid_type", "top_k"},
      {kText, text(R"("min_p": 1.5)"), 400, "invalid_value", "min_p"},
      {kText, text(R"("seed": "x")"), 400, "invalid_type", "seed"},
      {kText, text(R"("seed": 18446744073709551615)"), 400, "invalid_value", "seed"},
      {kText, text(R"("stop": 5)"), 400, "invalid_type", "stop"},
      {kText, text(R"("stop": "")"), 400, "invalid_value", "stop"},
      {kText, text(R"("stop": ["a", 1])"), 400, "invalid_type", "stop[1]"},
      {kText, text(R"("stop": ["a", ""])"), 400, "invalid_value", "stop[1]"},
      {kText,
       text(
           R"("stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])"),
       400, "invalid_value", "stop"},
      {kText, text(R"("repetition_penalty": 0)"), 400, "invalid_value", "repetition_penalty"},
      {kText, text(R"("presence_penalty": 2.5)"), 400, "invalid_value", "presence_penalty"},
      {kText, text(R"("frequency_penalty": -3)"), 400, "invalid_value", "frequency_penalty"},
      {kText, text(R"("frequency_penalty": true)"), 400, "invalid_type", "frequency_penalty"},
      {kText, text(R"("n": 2)"), 400, "unsupported_value", "n"},
      {kChat, chat(R"("n": 0)"), 400, "unsupported_value", "n"},
      {kText, text(R"("n": "1")"), 400, "invalid_type", "n"},
      {kText, text(R"("best_of": 3)"), 400, "unsupported_value", "best_of"},
      {kText, text(R"("echo": true)"), 400, "unsupported_value", "echo"},
      {kChat, chat(R"("logprobs": 5)"), 400, "invalid_type", "logprobs"},
      {kText, text(R"("logprobs": 6)"), 400, "invalid_value", "logprobs"},
      {kText, text(R"("logprobs": true)"), 400, "invalid_type", "logprobs"},
      {kChat, chat(R"("top_logprobs": 3)"), 400, "invalid_value", "top_logprobs"},
      {kChat, chat(R"("logprobs": true, "top_logprobs": 21)"), 400, "invalid_value",
       "top_logprobs"},
      {kText, text(R"("stream": "yes")"), 400, "invalid_type", "stream"},
      {kText, text(R"("stream_options": {"include_usage": true})"), 400, "invalid_value",
       "stream_options"},
      {kText, text(R"("stream": true, "stream_options": 1)"), 400, "invalid_type",
       "stream_options"},
      {kText, text(R"("stream": true, "stream_options": {"include_usage": 1})"), 400,
       "invalid_type", "stream_options.include_usage"},
      {kText, text(R"("return_progress": true)"), 400, "invalid_value", "return_progress"},
      {kText, text(R"("stream": true, "return_progress": 1)"), 400, "invalid_type",
       "return_progress"},
      {kText, text(R"("session_id": 12)"), 400, "invalid_type", "session_id"},
      {kText, text(R"("session_id": "")"), 400, "invalid_value", "session_id"},
      {kText, text(R"("session_id": "a b")"), 400, "invalid_value", "session_id"},
  };
  return t;
}

TEST(ServerRequest, MalformedRequestsGetExactErrors) {
  for (const Bad& b : bad_requests()) {
    const std::string shown = b.body.size() > 200 ? b.body.substr(0, 40) + "..." : b.body;
    try {
      parse_completion_request(b.body, b.endpoint);
      ADD_FAILURE() << "accepted: " << shown;
    } catch (const RequestError& e) {
      EXPECT_EQ(e.error().status, b.status) << shown;
      EXPECT_EQ(e.error().code, b.code) << shown << ": " << e.what();
      EXPECT_EQ(e.error().param, b.param) << shown << ": " << e.what();
      EXPECT_EQ(e.error().type, "invalid_request_error");
      EXPECT_FALSE(e.error().message.empty());
      if (!b.param.empty()) {
        EXPECT_NE(e.error().message.find(b.param), std::string::npos)
            << "the message names the field: " << e.what();
      }
    }
  }
}

TEST(ServerRequest, ErrorBodyHasOpenAIShape) {
  try {
    parse_completion_request(text(R"("n": 3)"), kText);
    FAIL();
  } catch (const RequestError& e) {
    const nlohmann::json j = e.error().body();
    ASSERT_TRUE(j.contains("error"));
    EXPECT_EQ(j["error"]["param"], "n");
    EXPECT_EQ(j["error"]["code"], "unsupported_value");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_TRUE(j["error"]["message"].is_string());
  }
  try {
    parse_completion_request("{", kText);
    FAIL();
  } catch (const RequestError& e) {
    EXPECT_TRUE(e.error().body()["error"]["param"].is_null());
  }
}

TEST(ServerRequest, ParsesAChatRequest) {
  const CompletionRequest r = parse_completion_request(
      R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
          "max_completion_tokens": 20, "max_tokens": 5, "temperature": 0, "top_p": 0.5,
          "top_k": 7, "min_p": 0.1, "seed": 42, "stop": "\n", "presence_penalty": 0.5,
          "frequency_penalty": -0.5, "repetition_penalty": 1.1, "n": 1, "logprobs": false,
          "stream": true, "stream_options": {"include_usage": true}, "session_id": "abc-1",
          "user": "ignored", "tools": null})",
      kChat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.top_k, 7);
  EXPECT_FLOAT_EQ(r.min_p, 0.1f);
  EXPECT_EQ(r.seed, 42);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
  EXPECT_FLOAT_EQ(r.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r.repetition_penalty, 1.1f);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.session_id, "abc-1");
}

TEST(ServerRequest, ParsesACompletionRequestWithDefaults) {
  CompletionRequest r = parse_completion_request(R"({"prompt": "Once upon"})", kText);
  EXPECT_EQ(r.prompt, "Once upon");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.temperature, 1.0f);
  EXPECT_EQ(r.top_p, 1.0f);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.session_id.empty());
  r = parse_completion_request(R"({"prompt": ["one"], "stop": ["a", "b"], "max_tokens": 3.0})",
                               kText);
  EXPECT_EQ(r.prompt, "one");
  EXPECT_EQ(r.stop.size(), 2u);
  EXPECT_EQ(r.max_tokens, 3);
  r = parse_completion_request(R"({"prompt": [1, 2, 3]})", kText);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_NO_THROW(parse_completion_request(nested(31), kText));
}

TEST(ServerRequest, Utf8Validation) {
  EXPECT_TRUE(lc::server::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(lc::server::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(lc::server::is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(lc::server::is_valid_utf8("\xe0\x80\x80"));      // overlong
  EXPECT_FALSE(lc::server::is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(lc::server::is_valid_utf8("\x80"));              // lone continuation byte
}

}  // namespace
