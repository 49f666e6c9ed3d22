// Requests of the OpenAI-compatible server: JSON bodies of /v1/chat/completions and
// /v1/completions parsed and validated into a typed request, and errors in OpenAI's shape
// {"error": {"message", "type", "param", "code"}} naming the request field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/chat_template.h"

namespace lc::server {

// Largest request body accepted (bigger ones: 413), and the deepest JSON nesting (deeper: 400).
constexpr size_t kMaxBodyBytes = 16u << 20;
constexpr int kMaxJsonDepth = 32;

// An error answer: HTTP status and OpenAI's error object.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;    // the request field ("" = none; null in the JSON)
  std::string code;     // e.g. "invalid_type" ("" = none; null in the JSON)
  int retry_after = 1;  // a 503's Retry-After, in seconds

  nlohmann::json body() const;
};

// Thrown by the parsers and the server's handlers; carries the answer.
class RequestError : public std::runtime_error {
 public:
  explicit RequestError(ApiError e) : std::runtime_error(e.message), error_(std::move(e)) {}
  const ApiError& error() const { return error_; }

 private:
  ApiError error_;
};

[[noreturn]] void fail_request(int status, std::string param, std::string code,
                               std::string message);

enum class Endpoint { ChatCompletions, Completions };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;                   // "" when not given
  std::vector<ChatMessage> messages;   // chat
  std::string prompt;                  // completions: text
  std::vector<int32_t> prompt_tokens;  // completions: token ids (when given as a list of ints)
  std::optional<int64_t> max_tokens;   // max_tokens or max_completion_tokens; unset: the server's
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage
  bool return_progress = false;  // stream prompt_progress events while the prompt is prefilled
  std::string session_id;        // "" = a fresh session for this request
  int logprobs = -1;  // log-probabilities with this many alternatives per token; -1 = none
};

// Whole bytes that are valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Parses a request body as JSON with the server's limits: 413 for a body over kMaxBodyBytes, 400
// "invalid_utf8" for invalid UTF-8, 400 "too_deep" for nesting deeper than kMaxJsonDepth, 400
// "invalid_json" for malformed JSON, 400 "invalid_type" when the top level is no object.
nlohmann::json parse_body(std::string_view body);

// Parses and validates a chat completion or completion body; RequestError naming the field.
CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint);
CompletionRequest parse_completion_json(const nlohmann::json& body, Endpoint endpoint);

// A session id is 1 to 128 printable ASCII characters; RequestError (param `param`) otherwise.
void validate_session_id(const std::string& id, const std::string& param);

}  // namespace lc::server
