#include "server/server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "engine/generation.h"
#include "engine/session.h"
#include "model/rope/rope_config.h"
#include "model/tokenizer/chat_template.h"
#include "server/metrics.h"
#include "server/request.h"
#include "server/session_store.h"
#include "server/sessions.h"

namespace lc::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, e.body());
  if (e.status == 503) res.set_header("Retry-After", std::to_string(std::max(1, e.retry_after)));
}

// Compares in time that depends on the lengths only, not on where the texts differ.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

std::string file_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

const char* finish_reason(const std::string& stop_reason) {
  return stop_reason == "length" ? "length" : "stop";
}

// Admission: at most `parallel` running, at most `queue` waiting.
class Scheduler {
 public:
  Scheduler(int parallel, int queue) : parallel_(parallel), queue_(queue) {}

  class Slot {
   public:
    explicit Slot(Scheduler& s) : s_(s) {}
    ~Slot() { s_.release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    Scheduler& s_;
  };

  // A running slot, after waiting for one; 503 when the queue is full.
  std::pair<int, int> counts() {  // running, waiting
    std::lock_guard lock(m_);
    return {running_, waiting_};
  }

  // One generation step at a time, in arrival order: running requests take turns step by step
  // (a prefill chunk, or one generated token), so a long prefill cannot stall a short chat, and
  // each step has the whole thread pool. The guard holds the turn until it is destroyed.
  class Turn {
   public:
    explicit Turn(Scheduler& s) : s_(s) {
      std::unique_lock lock(s_.turn_m_);
      const uint64_t mine = s_.next_ticket_++;
      s_.turn_cv_.wait(lock, [&] { return s_.serving_ == mine; });
    }
    ~Turn() {
      {
        std::lock_guard lock(s_.turn_m_);
        ++s_.serving_;
      }
      s_.turn_cv_.notify_all();
    }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;

   private:
    Scheduler& s_;
  };

  std::shared_ptr<Slot> acquire() {
    std::unique_lock lock(m_);
    if (running_ >= parallel_) {
      if (waiting_ >= queue_) {
        ApiError e;
        e.status = 503;
        e.type = "server_error";
        e.code = "server_busy";
        e.message = cat("the server is busy: ", running_, " requests running and ", waiting_,
                        " waiting; retry later");
        throw RequestError(e);
      }
      ++waiting_;
      cv_.wait(lock, [&] { return running_ < parallel_; });
      --waiting_;
    }
    ++running_;
    return std::make_shared<Slot>(*this);
  }

 private:
  void release() {
    {
      std::lock_guard lock(m_);
      --running_;
    }
    cv_.notify_one();
  }

  std::mutex m_;
  std::condition_variable cv_;
  int parallel_, queue_;
  int running_ = 0, waiting_ = 0;
  std::mutex turn_m_;
  std::condition_variable turn_cv_;
  uint64_t next_ticket_ = 0, serving_ = 0;
};

// Everything one completion needs while it runs, kept alive by the streaming provider.
struct Job {
  std::shared_ptr<Scheduler::Slot> slot;
  SessionRegistry* registry = nullptr;
  std::unique_ptr<SessionRegistry::Lease> lease;  // the session it runs in
  Session* session = nullptr;
  std::unique_ptr<Generation> gen;
  bool returned = false;
  CompletionRequest req;
  int64_t n_prompt = 0, n_cached = 0;
  size_t logprobs_sent = 0;  // streamed: entries of the result's logprobs already sent
  Clock::time_point arrived = Clock::now();
  bool first_token_seen = false;
  std::string id;
  int64_t created = 0;

  // Returns the session: a named one is saved (before the answer is complete, so that a client
  // that saw the answer can count on it); false with the error in `error` when saving failed.
  bool give_back(bool keep, std::string* error = nullptr) {
    if (returned || !lease) return true;
    returned = true;
    gen.reset();  // before the session it refers to
    try {
      registry->give_back(std::move(lease), keep);
    } catch (const Error& e) {
      if (error) *error = e.what();
      std::fprintf(stderr, "serve: %s\n", e.what());
      return false;
    }
    return true;
  }

  ~Job() { give_back(false); }
};

}  // namespace

struct Server::Impl {
  // Set once by attach() before `ready`; read only by handlers that saw `ready`.
  std::shared_ptr<const Model> model;
  SessionOptions session_opt;
  ServerOptions opt;
  std::string id;
  std::string replica;  // host:port this server listens on
  std::optional<ChatFormat> chat_format;
  std::string chat_format_error;
  Scheduler scheduler;
  httplib::Server http;
  std::unique_ptr<SessionRegistry> registry_;
  std::atomic<bool> ready{false};  // the model is loaded: requests are served (else 503 loading)
  std::atomic<uint64_t> next_id{1};
  std::atomic<bool> in_run{false}, stop_requested{false};
  // Counters of /metrics.
  Metrics counters;

  explicit Impl(ServerOptions o)
      : opt(std::move(o)), scheduler(std::max(1, opt.parallel), std::max(0, opt.queue)) {}

  SessionRegistry& registry() { return *registry_; }

  // The model and the sessions' settings: from now on requests are served.
  void attach(std::shared_ptr<const Model> m, SessionOptions so) {
    LC_CHECK(!ready.load());
    model = std::move(m);
    session_opt = std::move(so);
    registry_ = std::make_unique<SessionRegistry>(
        model, session_opt,
        SessionRegistry::Limits{opt.max_sessions, opt.session_ram, opt.session_budget,
                                opt.prompt_cache_bytes},
        !opt.session_store.empty()
            ? open_session_store(opt.session_store, opt.session_lease_seconds)
        : opt.session_dir.empty() ? nullptr
                                  : open_dir_store(opt.session_dir));
    if (!opt.chat_template.empty()) {
      chat_format = chat_format_from_name(opt.chat_template);
    } else if (model->tokenizer().chat_template().empty()) {
      chat_format_error = "the model has no chat template (tokenizer.chat_template)";
    } else {
      try {
        chat_format = detect_chat_format(model->tokenizer().chat_template());
      } catch (const Error& e) {
        chat_format_error =
            cat("the model's chat template is not one this server knows (", e.what(), ")");
      }
    }
    ready.store(true, std::memory_order_release);
  }

  void check_auth(const httplib::Request& req) const {
    if (opt.api_key.empty()) return;
    const std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const bool ok = h.size() > prefix.size() && h.compare(0, prefix.size(), prefix) == 0 &&
                    constant_time_equal(h.substr(prefix.size()), opt.api_key);
    if (!ok) {
      ApiError e;
      e.status = 401;
      e.code = "invalid_api_key";
      e.message = h.empty() ? "an API key is required: send the header 'Authorization: Bearer KEY'"
                            : "the API key is not valid";
      throw RequestError(e);
    }
  }

  void check_model(const std::string& name) const {
    if (name.empty() || name == id || name == opt.model_path) return;
    fail_request(404, "model", "model_not_found",
                 cat("the model '", name, "' does not exist; this server serves '", id, "'"));
  }

  std::vector<int32_t> prompt_tokens(const CompletionRequest& r) const {
    const Tokenizer& tok = model->tokenizer();
    std::vector<int32_t> ids;
    if (r.endpoint == Endpoint::ChatCompletions) {
      if (!chat_format)
        fail_request(400, "messages", "no_chat_template",
                     cat("chat completions need a chat template and ", chat_format_error,
                         "; use /v1/completions with a prompt instead"));
      std::string text;
      try {
        text = apply_chat_template(*chat_format, r.messages, true);
      } catch (const Error& e) {
        fail_request(400, "messages", "invalid_value", e.what());
      }
      ids = tok.encode(text, true, true);
    } else if (!r.prompt_tokens.empty()) {
      ids = r.prompt_tokens;
      for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] >= tok.n_vocab())
          fail_request(400, cat("prompt[", i, "]"), "invalid_value",
                       cat("'prompt[", i, "]' = ", ids[i], " is outside the vocabulary [0, ",
                           tok.n_vocab(), ")"));
    } else {
      ids = tok.encode(r.prompt, true, false);
    }
    if (ids.empty())
      fail_request(400, r.endpoint == Endpoint::ChatCompletions ? "messages" : "prompt",
                   "invalid_value", "the prompt is empty (and the model adds no BOS token)");
    return ids;
  }

  GenerateOptions generate_options(const CompletionRequest& r, int64_t n_prompt) const {
    GenerateOptions g;
    if (r.max_tokens) {
      g.n_predict = *r.max_tokens;
    } else if (r.endpoint == Endpoint::Completions) {
      g.n_predict = 16;  // OpenAI's default for completions
    } else {
      const int64_t ctx = session_opt.trained_ctx > 0 ? session_opt.trained_ctx : 2048;
      g.n_predict = std::max<int64_t>(16, ctx - n_prompt);
    }
    g.stop = r.stop;
    g.sampling.temperature = r.temperature;
    g.sampling.top_k = r.top_k;
    g.sampling.top_p = r.top_p;
    g.sampling.min_p = r.min_p;
    g.sampling.repeat_penalty = r.repetition_penalty;
    g.sampling.presence_penalty = r.presence_penalty;
    g.logprobs = r.logprobs;
    g.sampling.frequency_penalty = r.frequency_penalty;
    g.sampling.seed =
        r.seed ? static_cast<uint64_t>(*r.seed) : static_cast<uint64_t>(std::random_device{}());
    return g;
  }

  // Parses, admits and prepares a completion; RequestError for anything the client got wrong.
  std::shared_ptr<Job> prepare(const httplib::Request& req, Endpoint endpoint) {
    check_auth(req);
    auto job = std::make_shared<Job>();
    job->req = parse_completion_request(req.body, endpoint);
    const CompletionRequest& r = job->req;
    check_model(r.model);
    if (job->req.session_id.empty() && req.has_header("X-Session-Id")) {
      job->req.session_id = req.get_header_value("X-Session-Id");
      validate_session_id(job->req.session_id, "X-Session-Id");
    }
    const std::vector<int32_t> ids = prompt_tokens(r);
    const auto n_ids = static_cast<int64_t>(ids.size());
    // The session's configured context (memory.max_ctx, serve --ctx): a prompt that fills it
    // leaves no room for an answer; generation stops at it (finish_reason "length").
    const int64_t limit = session_opt.memory.max_ctx;
    if (limit > 0 && n_ids >= limit)
      fail_request(400, r.endpoint == Endpoint::ChatCompletions ? "messages" : "prompt",
                   "context_length_exceeded",
                   cat("this session's context is ", limit, " tokens (memory.max_ctx) and the ",
                       r.endpoint == Endpoint::ChatCompletions ? "messages take " : "prompt takes ",
                       n_ids, " tokens, leaving no room for a completion; shorten the prompt"));
    GenerateOptions g = generate_options(r, n_ids);
    if (limit > 0) g.n_predict = std::min<int64_t>(g.n_predict, limit - n_ids);

    job->slot = scheduler.acquire();
    job->registry = &registry();
    job->lease =
        r.session_id.empty() ? registry().unnamed(ids) : registry().named(r.session_id, ids);
    job->session = &job->lease->session();
    Session& s = *job->session;
    job->n_cached = job->lease->cached;
    std::vector<int32_t> fresh(ids.begin() + static_cast<std::ptrdiff_t>(job->n_cached), ids.end());
    job->n_prompt = static_cast<int64_t>(ids.size());
    try {
      job->gen = std::make_unique<Generation>(s, std::move(fresh), g);
    } catch (const Error& e) {
      fail_request(400, e.settings().empty() ? "" : e.settings()[0], "invalid_value", e.what());
    }
    job->id =
        cat(endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-", next_id.fetch_add(1));
    job->created = static_cast<int64_t>(std::time(nullptr));
    return job;
  }

  json usage(const Job& job) const {
    const int64_t completion = static_cast<int64_t>(job.gen->result().tokens.size());
    return {{"prompt_tokens", job.n_prompt},
            {"completion_tokens", completion},
            {"total_tokens", job.n_prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", job.n_cached}}}};
  }

  // OpenAI's logprobs object for result entries [from, to): chat's {"content": [...]}, or the
  // completions' parallel lists.
  json logprobs_json(const Job& job, size_t from, size_t to) const {
    const std::vector<TokenLogprob>& lp = job.gen->result().logprobs;
    const Tokenizer& tok = model->tokenizer();
    auto bytes = [](const std::string& s) {
      json b = json::array();
      for (unsigned char c : s) b.push_back(static_cast<int>(c));
      return b;
    };
    if (job.req.endpoint == Endpoint::ChatCompletions) {
      json content = json::array();
      for (size_t i = from; i < to; ++i) {
        const std::string t = tok.token_to_piece(lp[i].id);
        json top = json::array();
        for (const auto& [id, p] : lp[i].top) {
          const std::string ts = tok.token_to_piece(id);
          top.push_back({{"token", ts}, {"logprob", p}, {"bytes", bytes(ts)}});
        }
        content.push_back(
            {{"token", t}, {"logprob", lp[i].logprob}, {"bytes", bytes(t)}, {"top_logprobs", top}});
      }
      return {{"content", content}, {"refusal", nullptr}};
    }
    json tokens = json::array(), token_lp = json::array(), top = json::array(),
         offset = json::array();
    size_t at = 0;
    for (size_t i = 0; i < from; ++i) at += tok.token_to_piece(lp[i].id).size();
    for (size_t i = from; i < to; ++i) {
      const std::string t = tok.token_to_piece(lp[i].id);
      tokens.push_back(t);
      token_lp.push_back(lp[i].logprob);
      json alt = json::object();
      for (const auto& [id, p] : lp[i].top) alt[tok.token_to_piece(id)] = p;
      top.push_back(alt);
      offset.push_back(at);
      at += t.size();
    }
    return {{"tokens", tokens},
            {"token_logprobs", token_lp},
            {"top_logprobs", top},
            {"text_offset", offset}};
  }

  // A streamed chunk with the text and the log-probabilities of the tokens not sent yet.
  json text_chunk(Job& job, const std::string& text, const char* finish) const {
    json j = chunk(job, text, finish, false);
    const size_t n = job.gen->result().logprobs.size();
    if (job.req.logprobs >= 0 && n > job.logprobs_sent) {
      j["choices"][0]["logprobs"] = logprobs_json(job, job.logprobs_sent, n);
      job.logprobs_sent = n;
    }
    return j;
  }

  // A streamed chunk's JSON with `text` and `finish` (null when "").
  json chunk(const Job& job, const std::string& text, const char* finish, bool role) const {
    json choice;
    choice["index"] = 0;
    choice["finish_reason"] = finish ? json(finish) : json(nullptr);
    choice["logprobs"] = nullptr;
    if (job.req.endpoint == Endpoint::ChatCompletions) {
      json delta = json::object();
      if (role) delta["role"] = "assistant";
      if (!finish) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
    }
    json j = {{"id", job.id},
              {"object", job.req.endpoint == Endpoint::ChatCompletions ? "chat.completion.chunk"
                                                                       : "text_completion"},
              {"created", job.created},
              {"model", id},
              {"choices", json::array({choice})}};
    if (job.req.include_usage) j["usage"] = nullptr;
    return j;
  }

  json final_response(const Job& job) const {
    const GenerateResult& res = job.gen->result();
    json choice = {
        {"index", 0}, {"finish_reason", finish_reason(res.stop_reason)}, {"logprobs", nullptr}};
    if (job.req.logprobs >= 0) choice["logprobs"] = logprobs_json(job, 0, res.logprobs.size());
    const bool chat = job.req.endpoint == Endpoint::ChatCompletions;
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", res.text}};
    else
      choice["text"] = res.text;
    json j = {{"id", job.id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", job.created},
              {"model", id},
              {"choices", json::array({choice})},
              {"usage", usage(job)}};
    if (!job.req.session_id.empty()) j["session_id"] = job.req.session_id;
    return j;
  }

  // Counts a finished (or cancelled) completion for /metrics.
  void count(const Job& job) {
    const GenerateResult& res = job.gen->result();
    counters.completion(res.stop_reason == "cancelled", job.n_cached,
                        job.gen->progress().prompt_done, static_cast<int64_t>(res.tokens.size()),
                        res.prompt_seconds, res.gen_seconds);
  }

  // One step of the job's generation, in its turn (see Scheduler::Turn).
  bool step(Job& job) {
    job.lease->keep_alive();
    Scheduler::Turn turn(scheduler);
    return job.gen->step();
  }

  // After each step: the time to the first generated token, once.
  void note_step(Job& job) {
    if (job.first_token_seen || job.gen->progress().generated == 0) return;
    job.first_token_seen = true;
    counters.time_to_first_token(std::chrono::duration<double>(Clock::now() - job.arrived).count());
  }

  void metrics(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    Metrics::Gauges g;
    std::tie(g.running, g.waiting) = scheduler.counts();
    g.sessions = registry().sessions_in_ram();
    g.kv_bytes_in_ram = registry().kv_bytes_in_ram();
    g.kv_bytes_on_disk = registry().kv_bytes_on_disk();
    g.sessions_saved = registry().sessions_saved();
    res.set_content(counters.prometheus(g), "text/plain; version=0.0.4");
  }

  // An error while generating: the session may hold part of the tokens; start it afresh.
  static void drop_session(Job& job) {
    job.gen.reset();
    job.session->reset();
    job.give_back(false);
  }

  void completion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    std::shared_ptr<Job> job = prepare(req, endpoint);
    if (!job->req.stream) {
      try {
        while (step(*job)) note_step(*job);
      } catch (const Error& e) {
        drop_session(*job);
        fail_request(400, e.settings().empty() ? "" : e.settings()[0], "generation_failed",
                     e.what());
      }
      count(*job);
      const json out = final_response(*job);
      std::string err;
      if (!job->give_back(true, &err))
        fail_request(503, "session_id", "session_store_unavailable",
                     cat("the answer could not be saved in the session, which stays as it was "
                         "before this request (retry): ",
                         err));
      send_json(res, 200, out);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job](size_t, httplib::DataSink& sink) { return stream(*job, sink); });
  }

  // Runs the whole generation, writing its events; false when the client went away.
  bool stream(Job& job, httplib::DataSink& sink) {
    Generation& gen = *job.gen;
    bool open = true;
    auto write = [&](const std::string& s) {
      if (open && !sink.write(s.data(), s.size())) open = false;
      return open;
    };
    auto event = [&](const json& j) { return write("data: " + dump(j) + "\n\n"); };
    const Clock::time_point t0 = Clock::now();
    Clock::time_point last = t0;
    event(chunk(job, "", nullptr, true));
    try {
      while (open) {
        const bool prefilling = gen.progress().prefilling();
        if (!step(job)) break;
        note_step(job);
        if (!gen.new_text().empty()) {
          event(text_chunk(job, gen.new_text(), nullptr));
          last = Clock::now();
        } else if (prefilling && job.req.return_progress) {
          const GenerationProgress p = gen.progress();
          json j = chunk(job, "", nullptr, false);
          j["choices"] = json::array();
          j["prompt_progress"] = {
              {"total", job.n_prompt},
              {"cache", job.n_cached},
              {"processed", job.n_cached + p.prompt_done},
              {"time_ms", std::chrono::duration<double, std::milli>(Clock::now() - t0).count()}};
          event(j);
          last = Clock::now();
        } else if (prefilling &&
                   std::chrono::duration<double>(Clock::now() - last).count() >= opt.ping_seconds) {
          write(": ping\n\n");
          last = Clock::now();
        }
      }
      if (!open) {
        gen.cancel();  // the client went away: the session keeps what was finished
        gen.step();
        count(job);
        job.give_back(true);
        return false;
      }
    } catch (const Error& e) {
      drop_session(job);
      ApiError err;
      err.status = 500;
      err.type = "server_error";
      err.code = "generation_failed";
      err.message = e.what();
      event(err.body());
      write("data: [DONE]\n\n");
      if (open) sink.done();
      return open;
    }
    count(job);
    const json final_chunk = text_chunk(job, "", finish_reason(gen.result().stop_reason));
    json usage_json = usage(job);
    std::string err;
    if (!job.give_back(true, &err)) {
      // The text was streamed already: an error event says the session did not keep it.
      ApiError e;
      e.status = 503;
      e.type = "server_error";
      e.code = "session_store_unavailable";
      e.param = "session_id";
      e.message =
          "the answer could not be saved in the session, which stays as it was before "
          "this request (retry): " +
          err;
      event(e.body());
      write("data: [DONE]\n\n");
      if (open) sink.done();
      return open;
    }
    event(final_chunk);
    if (job.req.include_usage) {
      json u = chunk(job, "", nullptr, false);
      u["choices"] = json::array();
      u["usage"] = usage_json;
      event(u);
    }
    write("data: [DONE]\n\n");
    if (open) sink.done();
    return open;
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    const json body = parse_body(req.body);
    auto it = body.find("content");
    if (it == body.end() || it->is_null())
      fail_request(400, "content", "missing_field", "'content' is required");
    if (!it->is_string())
      fail_request(400, "content", "invalid_type", "'content' must be a string");
    bool add_special = false;
    if (auto a = body.find("add_special"); a != body.end() && !a->is_null()) {
      if (!a->is_boolean())
        fail_request(400, "add_special", "invalid_type", "'add_special' must be a boolean");
      add_special = a->get<bool>();
    }
    send_json(res, 200,
              {{"tokens", model->tokenizer().encode(it->get<std::string>(), add_special)}});
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    const json body = parse_body(req.body);
    auto it = body.find("tokens");
    if (it == body.end() || it->is_null())
      fail_request(400, "tokens", "missing_field", "'tokens' is required");
    if (!it->is_array())
      fail_request(400, "tokens", "invalid_type", "'tokens' must be an array of token ids");
    std::vector<int32_t> ids;
    const int32_t n_vocab = model->tokenizer().n_vocab();
    for (size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (!v.is_number_integer())
        fail_request(400, cat("tokens[", i, "]"), "invalid_type",
                     cat("'tokens[", i, "]' must be an integer token id"));
      const int64_t t = v.get<int64_t>();
      if (t < 0 || t >= n_vocab)
        fail_request(
            400, cat("tokens[", i, "]"), "invalid_value",
            cat("'tokens[", i, "]' = ", t, " is outside the vocabulary [0, ", n_vocab, ")"));
      ids.push_back(static_cast<int32_t>(t));
    }
    send_json(res, 200, {{"content", model->tokenizer().decode(ids)}});
  }

  void props(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    json j = {{"model", id},
              {"model_path", opt.model_path},
              {"n_ctx_train", session_opt.trained_ctx},
              {"parallel", std::max(1, opt.parallel)},
              {"queue", std::max(0, opt.queue)},
              {"rope", rope_summary(session_opt.rope)},
              {"settings", describe_settings(session_opt)}};
    j["chat_template"] =
        chat_format ? json(std::string(chat_format_name(*chat_format))) : json(nullptr);
    send_json(res, 200, j);
  }

  static std::string session_path_id(const httplib::Request& req) {
    std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
    validate_session_id(id, "session_id");
    return id;
  }

  void list_sessions(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    send_json(res, 200, registry().list());
  }

  void get_session(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    const std::string id = session_path_id(req);
    const auto j = registry().describe(id);
    if (!j) fail_request(404, "session_id", "session_not_found", cat("no session '", id, "'"));
    send_json(res, 200, *j);
  }

  void delete_session(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    const std::string id = session_path_id(req);
    if (!registry().remove(id))
      fail_request(404, "session_id", "session_not_found", cat("no session '", id, "'"));
    send_json(res, 200, {{"id", id}, {"object", "session"}, {"deleted", true}});
  }

  void models(const httplib::Request& req, httplib::Response& res) {
    check_auth(req);
    send_json(
        res, 200,
        {{"object", "list"},
         {"data",
          json::array(
              {{{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "longctx"}}})}});
  }

  // Wraps a handler: RequestError and lc::Error become OpenAI-shaped error answers.
  template <typename F>
  httplib::Server::Handler guarded(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      struct CountErrors {
        Impl* self;
        httplib::Response& res;
        ~CountErrors() {
          if (res.status >= 400) self->counters.error_answer(res.status);
        }
      } count_errors{this, res};
      // Which replica answered (behind a load balancer: for logs, tests and the cluster demo).
      res.set_header("X-Longctx-Replica", replica);
      if (!ready.load(std::memory_order_acquire)) {
        ApiError err;
        err.status = 503;
        err.type = "server_error";
        err.code = "model_loading";
        err.message = "the model is still loading; try again shortly (GET /health says when)";
        send_error(res, err);
        return;
      }
      try {
        (this->*f)(req, res);
      } catch (const RequestError& e) {
        send_error(res, e.error());
      } catch (const Error& e) {
        ApiError err;
        err.message = e.what();
        err.param = e.settings().empty() ? "" : e.settings()[0];
        err.code = "invalid_value";
        send_error(res, err);
      } catch (const std::exception& e) {
        ApiError err;
        err.status = 500;
        err.type = "server_error";
        err.message = cat("internal error: ", e.what());
        send_error(res, err);
      }
    };
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    completion(req, res, Endpoint::ChatCompletions);
  }
  void completions(const httplib::Request& req, httplib::Response& res) {
    completion(req, res, Endpoint::Completions);
  }

  void routes() {
    http.Post("/v1/chat/completions", guarded(&Impl::chat_completions));
    http.Post("/chat/completions", guarded(&Impl::chat_completions));
    http.Post("/v1/completions", guarded(&Impl::completions));
    http.Post("/completions", guarded(&Impl::completions));
    http.Get("/v1/models", guarded(&Impl::models));
    http.Get("/models", guarded(&Impl::models));
    http.Post("/tokenize", guarded(&Impl::tokenize));
    http.Post("/detokenize", guarded(&Impl::detokenize));
    http.Get("/props", guarded(&Impl::props));
    http.Get("/v1/sessions", guarded(&Impl::list_sessions));
    http.Get(R"(/v1/sessions/([^/]+))", guarded(&Impl::get_session));
    http.Delete(R"(/v1/sessions/([^/]+))", guarded(&Impl::delete_session));
    http.Get("/metrics", guarded(&Impl::metrics));
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (ready.load(std::memory_order_acquire)) {
        send_json(res, 200, {{"status", "ok"}});
      } else {
        res.set_header("Retry-After", "1");
        send_json(res, 503, {{"status", "loading"}});
      }
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      counters.error_answer(res.status);
      ApiError e;
      e.status = res.status;
      if (res.status == 404) {
        e.code = "not_found";
        e.message = cat("no such endpoint: ", req.method, " ", req.path);
      } else if (res.status == 413) {
        e.code = "body_too_large";
        e.message = cat("the request body is larger than the limit of ", kMaxBodyBytes, " bytes");
      } else {
        e.message = cat("the request could not be handled (HTTP ", res.status, ")");
      }
      send_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_payload_max_length(kMaxBodyBytes);
    // SO_REUSEADDR only: a restarted server binds at once, a second one on a port in use fails
    // (httplib's default, SO_REUSEPORT, would let both listen and share the connections).
    // TCP_NODELAY (inherited by accepted connections): a response's header and body, and each
    // streamed event, go out at once instead of waiting for the client's delayed ACK (~40 ms).
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    });
    const size_t threads =
        static_cast<size_t>(std::max(1, opt.parallel) + std::max(0, opt.queue) + 4);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
};

Server::Server(ServerOptions opt) {
  if (opt.parallel < 1)
    fail_setting({"server.parallel"}, "server.parallel must be >= 1, got ", opt.parallel);
  if (opt.queue < 0) fail_setting({"server.queue"}, "server.queue must be >= 0, got ", opt.queue);
  if (opt.port < 0 || opt.port > 65535)
    fail_setting({"server.port"}, "server.port must be in [0, 65535], got ", opt.port);
  if (!(opt.ping_seconds > 0))
    fail_setting({"server.ping_seconds"}, "server.ping_seconds must be > 0, got ",
                 opt.ping_seconds);
  if (!opt.chat_template.empty()) chat_format_from_name(opt.chat_template);  // names it if unknown
  impl_ = std::make_unique<Impl>(std::move(opt));
  Impl& m = *impl_;
  m.id = !m.opt.model_id.empty()     ? m.opt.model_id
         : !m.opt.model_path.empty() ? file_name(m.opt.model_path)
                                     : std::string("model");
  m.routes();
}

Server::Server(std::shared_ptr<const Model> model, SessionOptions session, ServerOptions opt)
    : Server(std::move(opt)) {
  attach(std::move(model), std::move(session));
}

void Server::attach(std::shared_ptr<const Model> model, SessionOptions session) {
  impl_->attach(std::move(model), std::move(session));
}

bool Server::ready() const { return impl_->ready.load(); }

Server::~Server() { stop(); }

int Server::bind() {
  Impl& m = *impl_;
  if (m.opt.port == 0) {
    const int port = m.http.bind_to_any_port(m.opt.host);
    if (port <= 0) fail("cannot listen on ", m.opt.host, " (no free port)");
    m.replica = cat(m.opt.host, ":", port);
    return port;
  }
  m.replica = cat(m.opt.host, ":", m.opt.port);
  if (!m.http.bind_to_port(m.opt.host, m.opt.port))
    fail("cannot listen on ", m.opt.host, ":", m.opt.port,
         " (the port is in use, or the address is not this machine's)");
  return m.opt.port;
}

void Server::run() {
  Impl& m = *impl_;
  m.in_run = true;
  if (!m.stop_requested) m.http.listen_after_bind();
  m.in_run = false;
}

void Server::stop() {
  if (!impl_) return;
  Impl& m = *impl_;
  m.stop_requested = true;
  // httplib ignores a stop() that comes before its loop runs: wait for the loop (or for run() to
  // have returned on seeing stop_requested).
  while (m.in_run && !m.http.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.http.stop();
}

const std::string& Server::model_id() const { return impl_->id; }

}  // namespace lc::server
