#include "server/request.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace lc::server {

using nlohmann::json;

json ApiError::body() const {
  json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", e}};
}

void fail_request(int status, std::string param, std::string code, std::string message) {
  ApiError e;
  e.status = status;
  e.param = std::move(param);
  e.code = std::move(code);
  e.message = std::move(message);
  throw RequestError(std::move(e));
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(len) > n) return false;
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

namespace {

// The deepest nesting of arrays and objects, outside strings; stops counting past `limit`.
int json_depth(std::string_view s, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

[[noreturn]] void wrong_type(const std::string& field, const char* want, const json& v) {
  fail_request(400, field, "invalid_type",
               cat("'", field, "' must be ", want, ", got ", type_name(v)));
}

[[noreturn]] void bad_value(const std::string& field, const std::string& what) {
  fail_request(400, field, "invalid_value", cat("'", field, "' ", what));
}

// The field's value, or nullptr when absent or null (both mean "not given").
const json* get(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number(const json& v, const std::string& field) {
  if (!v.is_number()) wrong_type(field, "a number", v);
  const double d = v.get<double>();
  if (!std::isfinite(d)) bad_value(field, "must be a finite number");
  return d;
}

float number_in(const json& body, const char* field, double lo, double hi, float dflt) {
  const json* v = get(body, field);
  if (!v) return dflt;
  const double d = number(*v, field);
  if (d < lo || d > hi) bad_value(field, cat("must be between ", lo, " and ", hi, ", got ", d));
  return static_cast<float>(d);
}

int64_t integer(const json& v, const std::string& field) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad_value(field, "is too large");
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  wrong_type(field, "an integer", v);
}

bool boolean(const json& body, const char* field) {
  const json* v = get(body, field);
  if (!v) return false;
  if (!v->is_boolean()) wrong_type(field, "a boolean", *v);
  return v->get<bool>();
}

std::string text_of(const json& v, const std::string& field) {
  if (!v.is_string()) wrong_type(field, "a string", v);
  return v.get<std::string>();
}

// A message's content: a string, or a list of {"type": "text", "text": ...} parts.
std::string message_content(const json& v, const std::string& field) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(field, "a string or an array of text parts", v);
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string f = cat(field, "[", i, "]");
    const json& part = v[i];
    if (!part.is_object()) wrong_type(f, "an object", part);
    const json* type = get(part, "type");
    if (!type) fail_request(400, f + ".type", "missing_field", cat("'", f, ".type' is required"));
    if (text_of(*type, f + ".type") != "text")
      fail_request(400, f + ".type", "unsupported_value",
                   cat("'", f, ".type' must be \"text\": this server reads text only"));
    const json* text = get(part, "text");
    if (!text) fail_request(400, f + ".text", "missing_field", cat("'", f, ".text' is required"));
    out += text_of(*text, f + ".text");
  }
  return out;
}

void parse_messages(const json& body, CompletionRequest& r) {
  const json* m = get(body, "messages");
  if (!m) fail_request(400, "messages", "missing_field", "'messages' is required");
  if (!m->is_array()) wrong_type("messages", "an array", *m);
  if (m->empty()) bad_value("messages", "must hold at least one message");
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string f = cat("messages[", i, "]");
    const json& msg = (*m)[i];
    if (!msg.is_object()) wrong_type(f, "an object", msg);
    const json* role = get(msg, "role");
    if (!role) fail_request(400, f + ".role", "missing_field", cat("'", f, ".role' is required"));
    std::string rs = text_of(*role, f + ".role");
    if (rs == "developer") rs = "system";  // OpenAI's newer name for the system role
    if (rs != "system" && rs != "user" && rs != "assistant")
      bad_value(f + ".role",
                cat("must be \"system\", \"user\" or \"assistant\", got \"", rs, "\""));
    const json* content = get(msg, "content");
    if (!content)
      fail_request(400, f + ".content", "missing_field", cat("'", f, ".content' is required"));
    r.messages.push_back({rs, message_content(*content, f + ".content")});
  }
}

void parse_prompt(const json& body, CompletionRequest& r) {
  const json* p = get(body, "prompt");
  if (!p) fail_request(400, "prompt", "missing_field", "'prompt' is required");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    return;
  }
  if (!p->is_array())
    wrong_type("prompt", "a string, or an array of one string or of token ids", *p);
  if (p->empty()) bad_value("prompt", "must not be empty");
  if ((*p)[0].is_string()) {
    if (p->size() != 1)
      fail_request(400, "prompt", "unsupported_value",
                   "'prompt' may hold one string only: this server answers one prompt per request");
    r.prompt = (*p)[0].get<std::string>();
    return;
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const std::string f = cat("prompt[", i, "]");
    const int64_t id = integer((*p)[i], f);
    if (id < 0 || id > std::numeric_limits<int32_t>::max())
      bad_value(f, cat("must be a token id >= 0, got ", id));
    r.prompt_tokens.push_back(static_cast<int32_t>(id));
  }
}

void parse_stop(const json& body, CompletionRequest& r) {
  const json* s = get(body, "stop");
  if (!s) return;
  constexpr size_t kMaxStops = 16;
  if (s->is_string()) {
    if (s->get<std::string>().empty()) bad_value("stop", "must not be an empty string");
    r.stop.push_back(s->get<std::string>());
    return;
  }
  if (!s->is_array()) wrong_type("stop", "a string or an array of strings", *s);
  if (s->size() > kMaxStops) bad_value("stop", cat("may hold at most ", kMaxStops, " strings"));
  for (size_t i = 0; i < s->size(); ++i) {
    const std::string f = cat("stop[", i, "]");
    std::string t = text_of((*s)[i], f);
    if (t.empty()) bad_value(f, "must not be an empty string");
    r.stop.push_back(std::move(t));
  }
}

}  // namespace

void validate_session_id(const std::string& id, const std::string& param) {
  if (id.empty() || id.size() > 128)
    bad_value(param, cat("must be 1 to 128 characters long, got ", id.size()));
  for (char c : id)
    if (c < 0x21 || c > 0x7E)
      bad_value(param, "may hold printable ASCII characters only (no spaces)");
}

json parse_body(std::string_view body) {
  if (body.size() > kMaxBodyBytes)
    fail_request(
        413, "", "body_too_large",
        cat("the request body is ", body.size(), " bytes, more than the limit of ", kMaxBodyBytes));
  if (!is_valid_utf8(body))
    fail_request(400, "", "invalid_utf8", "the request body is not valid UTF-8");
  if (json_depth(body, kMaxJsonDepth) > kMaxJsonDepth)
    fail_request(
        400, "", "too_deep",
        cat("the request body nests arrays and objects deeper than ", kMaxJsonDepth, " levels"));
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) fail_request(400, "", "invalid_json", "the request body is not valid JSON");
  if (!j.is_object())
    fail_request(400, "", "invalid_type",
                 cat("the request body must be a JSON object, got ", type_name(j)));
  return j;
}

CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint) {
  return parse_completion_json(parse_body(body), endpoint);
}

CompletionRequest parse_completion_json(const json& body, Endpoint endpoint) {
  CompletionRequest r;
  r.endpoint = endpoint;
  if (!body.is_object())
    fail_request(400, "", "invalid_type",
                 cat("the request body must be a JSON object, got ", type_name(body)));
  if (const json* m = get(body, "model")) r.model = text_of(*m, "model");
  if (endpoint == Endpoint::ChatCompletions)
    parse_messages(body, r);
  else
    parse_prompt(body, r);

  for (const char* field : {"max_completion_tokens", "max_tokens"}) {
    const json* v = get(body, field);
    if (!v) continue;
    const int64_t n = integer(*v, field);
    constexpr int64_t kMax = int64_t{1} << 30;
    if (n < 1 || n > kMax) bad_value(field, cat("must be between 1 and ", kMax, ", got ", n));
    r.max_tokens = n;
    break;  // max_completion_tokens wins when both are given
  }
  r.temperature = number_in(body, "temperature", 0.0, 2.0, 1.0f);
  r.top_p = number_in(body, "top_p", 0.0, 1.0, 1.0f);
  if (r.top_p == 0.0f) bad_value("top_p", "must be greater than 0");
  if (const json* v = get(body, "top_k")) {
    const int64_t k = integer(*v, "top_k");
    if (k < 0 || k > std::numeric_limits<int32_t>::max())
      bad_value("top_k", cat("must be >= 0 (0 = off), got ", k));
    r.top_k = static_cast<int>(k);
  }
  r.min_p = number_in(body, "min_p", 0.0, 1.0, 0.0f);
  if (const json* v = get(body, "seed")) r.seed = integer(*v, "seed");
  parse_stop(body, r);
  r.repetition_penalty = number_in(body, "repetition_penalty", 0.0, 10.0, 1.0f);
  if (r.repetition_penalty == 0.0f) bad_value("repetition_penalty", "must be greater than 0");
  r.presence_penalty = number_in(body, "presence_penalty", -2.0, 2.0, 0.0f);
  r.frequency_penalty = number_in(body, "frequency_penalty", -2.0, 2.0, 0.0f);

  if (const json* v = get(body, "n")) {
    const int64_t n = integer(*v, "n");
    if (n != 1)
      fail_request(400, "n", "unsupported_value",
                   cat("'n' must be 1: this server generates one choice per request, got ", n));
  }
  if (const json* v = get(body, "best_of")) {
    const int64_t n = integer(*v, "best_of");
    if (n != 1)
      fail_request(400, "best_of", "unsupported_value",
                   cat("'best_of' must be 1: this server generates one choice per request"));
  }
  if (const json* v = get(body, "echo")) {
    if (!v->is_boolean()) wrong_type("echo", "a boolean", *v);
    if (v->get<bool>())
      fail_request(400, "echo", "unsupported_value", "'echo' is not supported by this server");
  }
  // Chat: "logprobs": true, with "top_logprobs" 0..20. Completions: "logprobs": 0..5, the count
  // of most likely tokens listed besides the chosen one.
  if (endpoint == Endpoint::ChatCompletions) {
    bool wanted = false;
    if (const json* v = get(body, "logprobs")) {
      if (!v->is_boolean()) wrong_type("logprobs", "a boolean", *v);
      wanted = v->get<bool>();
    }
    int top = 0;
    if (const json* v = get(body, "top_logprobs")) {
      const int64_t n = integer(*v, "top_logprobs");
      if (n < 0 || n > 20) bad_value("top_logprobs", cat("must be in 0..20, got ", n));
      if (!wanted)
        fail_request(400, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
      top = static_cast<int>(n);
    }
    r.logprobs = wanted ? top : -1;
  } else if (const json* v = get(body, "logprobs")) {
    const int64_t n = integer(*v, "logprobs");
    if (n < 0 || n > 5) bad_value("logprobs", cat("must be in 0..5, got ", n));
    r.logprobs = static_cast<int>(n);
  }

  r.stream = boolean(body, "stream");
  if (const json* so = get(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!r.stream)
      fail_request(400, "stream_options", "invalid_value",
                   "'stream_options' is only allowed when 'stream' is true");
    if (const json* u = get(*so, "include_usage")) {
      if (!u->is_boolean()) wrong_type("stream_options.include_usage", "a boolean", *u);
      r.include_usage = u->get<bool>();
    }
  }
  r.return_progress = boolean(body, "return_progress");
  if (r.return_progress && !r.stream)
    fail_request(400, "return_progress", "invalid_value",
                 "'return_progress' is only allowed when 'stream' is true");
  if (const json* v = get(body, "session_id")) {
    r.session_id = text_of(*v, "session_id");
    validate_session_id(r.session_id, "session_id");
  }
  return r;
}

}  // namespace lc::server
