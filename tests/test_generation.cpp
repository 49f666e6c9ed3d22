// The steppable generation: the same text as generate(), progress, cancellation between prefill
// chunks keeping the finished part, and resolved session settings.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "engine/generate.h"
#include "engine/generation.h"
#include "engine/session.h"
#include "engine/session_spec.h"
#include "model/model.h"
#include "support/paths.h"

namespace lc {
namespace {

std::shared_ptr<const Model> stories() {
  return Model::load(test::shared_path("models/stories260K.gguf"));
}

SessionOptions options(const Model& m, MemoryPolicy p, int64_t batch) {
  SessionSpec spec;
  spec.memory.policy = p;
  spec.ctx_train = 512;
  spec.batch = batch;
  return resolve_session(m, spec);
}

std::vector<int32_t> long_prompt(const Model& m, int n) {
  std::vector<int32_t> t{m.tokenizer().bos()};
  for (int i = 1; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 37) % 400));
  return t;
}

TEST(Generation, StepsGiveTheSameTextAsGenerate) {
  auto m = stories();
  const auto prompt = m->tokenizer().encode("Once upon a time, there was a", true);
  GenerateOptions g;
  g.n_predict = 30;
  g.sampling.temperature = 0;
  for (MemoryPolicy p : {MemoryPolicy::Full, MemoryPolicy::Streaming, MemoryPolicy::InfLLM}) {
    Session a(m, options(*m, p, 4)), b(m, options(*m, p, 4));
    const GenerateResult want = generate(a, prompt, g);
    Generation gen(b, prompt, g);
    std::string text;
    int steps = 0, prefill_steps = 0;
    while (true) {
      const bool prefilling = gen.progress().prefilling();
      if (!gen.step()) break;
      ++steps;
      if (prefilling) ++prefill_steps;
      text += gen.new_text();
    }
    EXPECT_TRUE(gen.done());
    EXPECT_EQ(text, want.text);
    EXPECT_EQ(gen.result().tokens, want.tokens);
    EXPECT_EQ(gen.result().stop_reason, want.stop_reason);
    // 9 prompt tokens in chunks of 4: 4 + 4 + 1 (with the last one alone, as streaming and
    // InfLLM feed it, the same steps).
    EXPECT_EQ(prompt.size(), 9u);
    EXPECT_EQ(prefill_steps, 3);
    // 8 tokens: full attention feeds the last one with its chunk, the others in a step of its own.
    EXPECT_EQ(a.prefill_step_size(4, 8), p == MemoryPolicy::Full ? 4 : 3);
    EXPECT_EQ(gen.progress().prompt_done, 9);
    EXPECT_EQ(gen.progress().generated, 30);
    EXPECT_EQ(steps, 3 + 30);
  }
}

TEST(Generation, CancelledPrefillKeepsTheFinishedChunksAndCanContinue) {
  auto m = stories();
  const auto prompt = long_prompt(*m, 700);
  for (MemoryPolicy p : {MemoryPolicy::Full, MemoryPolicy::InfLLM}) {
    const SessionOptions so = options(*m, p, 128);
    // Uninterrupted.
    Session whole(m, so);
    const std::vector<float> want = whole.eval(prompt);

    Session s(m, so);
    GenerateOptions g;
    g.n_predict = 5;
    g.sampling.temperature = 0;
    Generation gen(s, prompt, g);
    ASSERT_TRUE(gen.step());
    ASSERT_TRUE(gen.step());
    gen.cancel();
    ASSERT_TRUE(gen.step());  // the cancellation takes effect here
    EXPECT_TRUE(gen.done());
    EXPECT_FALSE(gen.step());
    EXPECT_EQ(gen.result().stop_reason, "cancelled");
    EXPECT_TRUE(gen.result().tokens.empty());
    EXPECT_EQ(gen.progress().prompt_done, 256);
    EXPECT_EQ(s.n_past(), 256);
    ASSERT_EQ(s.tokens().size(), 256u);
    EXPECT_TRUE(std::equal(s.tokens().begin(), s.tokens().end(), prompt.begin()));

    // Continuing with the rest gives the logits of the uninterrupted run.
    const std::vector<int32_t> rest(prompt.begin() + 256, prompt.end());
    const std::vector<float> got = s.eval(rest);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
        << memory_policy_name(p);
  }
}

TEST(Generation, RejectsBadOptionsNamingTheSetting) {
  auto m = stories();
  Session s(m, options(*m, MemoryPolicy::Full, 512));
  GenerateOptions g;
  g.n_predict = -1;
  try {
    Generation gen(s, {1, 2}, g);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_predict must be >= 0"), std::string::npos);
    ASSERT_EQ(e.settings().size(), 1u);
    EXPECT_EQ(e.settings()[0], "n_predict");
  }
  g.n_predict = 1;
  EXPECT_THROW(Generation(s, {}, g), Error);
}

TEST(SessionSpec, ResolvesDefaultsFromTheTrainedContextWithSources) {
  auto m = stories();
  SessionSpec spec;
  spec.memory.policy = MemoryPolicy::InfLLM;
  spec.ctx_train = 512;
  spec.memory.n_local = 128;
  spec.set_origin("memory.n_local", "cli:--n-local");
  const SessionOptions o = resolve_session(*m, spec);
  EXPECT_EQ(o.trained_ctx, 512);
  EXPECT_EQ(o.memory.policy, MemoryPolicy::InfLLM);
  EXPECT_EQ(o.memory.ctx.n_local, 128);
  EXPECT_EQ(o.memory.ctx.n_init, 32);       // min(128, 512 / 16)
  EXPECT_EQ(o.memory.ctx.exec_block, 128);  // bounded by the window set
  EXPECT_EQ(o.settings.at("memory.n_local").source, "cli:--n-local");
  EXPECT_EQ(o.settings.at("memory.n_init").source, "default: trained context 512");
  EXPECT_EQ(o.settings.at("memory.exec_block").source, "default: memory.n_local");
  EXPECT_EQ(o.settings.at("memory.policy").source, "set");
  bool found = false;
  for (const auto& line : describe_settings(o))
    found |= line == "memory.n_local = 128 (cli:--n-local)";
  EXPECT_TRUE(found);
}

TEST(SessionSpec, ErrorsNameTheSettings) {
  auto m = stories();
  auto settings_of = [&](const SessionSpec& spec) {
    try {
      resolve_session(*m, spec);
    } catch (const Error& e) {
      std::string s = e.what();
      for (const auto& n : e.settings()) s += " [" + n + "]";
      return s;
    }
    return std::string("no error");
  };
  SessionSpec a;
  a.memory.policy = MemoryPolicy::Streaming;
  a.ctx_train = 512;
  a.memory.n_local = 900;  // allowed, with a warning naming the setting
  const SessionOptions oa = resolve_session(*m, a);
  ASSERT_EQ(oa.warnings.size(), 1u);
  EXPECT_NE(
      oa.warnings[0].message.find("memory.n_local = 900 is larger than the trained context 512"),
      std::string::npos)
      << oa.warnings[0].message;
  EXPECT_EQ(oa.warnings[0].settings.front(), "memory.n_local");
  EXPECT_EQ(oa.warnings[0].message.find("--"), std::string::npos);
  a.rope.scaling = "linear";  // a window inside the scaled context: nothing to say
  a.rope.scale = 2;
  EXPECT_TRUE(resolve_session(*m, a).warnings.empty());
  a.memory.exec_block = 1000;
  const std::string ea = settings_of(a);
  EXPECT_NE(ea.find("memory.exec_block = 1000 must be <= memory.n_local = 900"), std::string::npos)
      << ea;
  EXPECT_NE(ea.find("[memory.exec_block] [memory.n_local]"), std::string::npos) << ea;
  EXPECT_EQ(ea.find("--"), std::string::npos) << ea;

  SessionSpec b;
  b.memory.policy = MemoryPolicy::InfLLM;
  b.memory.kv_type = KvType::F16;
  const std::string eb = settings_of(b);
  EXPECT_NE(eb.find("[memory.kv_type]"), std::string::npos) << eb;
  EXPECT_EQ(eb.find("--"), std::string::npos) << eb;

  SessionSpec c;
  c.batch = 0;
  EXPECT_NE(settings_of(c).find("batch must be positive"), std::string::npos);
  SessionSpec d;
  d.rope.scale = -2;
  const std::string ed = settings_of(d);
  EXPECT_NE(ed.find("rope.scale = -2"), std::string::npos) << ed;
  EXPECT_EQ(ed.find("--"), std::string::npos) << ed;
}

}  // namespace
}  // namespace lc
