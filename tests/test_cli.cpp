// The `longctx` command line end to end: JSON outputs and clear errors on bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/paths.h"

namespace lc {
namespace {

using test::longctx_binary;
using test::run_command;
using test::shared_path;

const std::string kStories = shared_path("models/stories260K.gguf");

nlohmann::json run_json(const std::string& args) {
  std::string out;
  const int rc = run_command(longctx_binary() + " " + args, &out, false);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return nlohmann::json::parse(out);
}

TEST(Cli, InfoJson) {
  const auto j = run_json("info " + kStories + " --json");
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["n_layer"], 5);
  EXPECT_EQ(j["n_embd"], 64);
  EXPECT_EQ(j["n_head"], 8);
  EXPECT_EQ(j["n_head_kv"], 4);
  EXPECT_EQ(j["n_vocab"], 512);
  EXPECT_EQ(j["tokenizer"]["model"], "llama");
}

TEST(Cli, InfoOnTokenizerOnlyFile) {
  const auto j =
      run_json("info " + shared_path("models/vocab/ggml-vocab-deepseek-coder.gguf") + " --json");
  EXPECT_FALSE(j["has_weights"].get<bool>());
  EXPECT_EQ(j["tokenizer"]["model"], "gpt2");
}

TEST(Cli, TokenizeJson) {
  const auto j = run_json("tokenize -m " + shared_path("models/vocab/ggml-vocab-gpt-2.gguf") +
                          " 'Hello world' --json");
  EXPECT_EQ(j["ids"], nlohmann::json::parse("[15496, 995]"));
  EXPECT_EQ(j["pieces"], nlohmann::json::parse("[\"Hello\", \" world\"]"));
}

TEST(Cli, GenerateJsonGreedy) {
  const auto j =
      run_json("generate -m " + kStories + " -p 'Once upon a time' -n 24 --temp 0 --json");
  EXPECT_EQ(j["n_generated"], 24);
  EXPECT_EQ(j["tokens"].size(), 24u);
  const std::string text = j["text"];
  EXPECT_EQ(text.rfind(", there was a little girl named Lily.", 0), 0u) << text;
  EXPECT_GT(j["timings"]["gen_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["n_prompt"].get<int>(), 1);
}

// An f16 KV cache (the default) gives the same greedy text as f32 (stories260K, head dim 8), and
// a q8_0 one the same as f32 on passkey-llama-tiny (head dim 32, the q8_0 blocks need a multiple

// generate --session FILE: a second run given the text the session holds (prompt and answer)
// reads only its last token again and continues exactly as one longer run would.
TEST(Cli, GenerateSessionFileContinuesLikeOneRun) {
  for (const std::string memory : {"full", "infllm"}) {
    const std::string file = ::testing::TempDir() + "cli-session-" + memory + ".lcs";
    std::remove(file.c_str());
    const std::string common = "generate -m " + kStories + " --memory " + memory +
                               " --ctx-train 512 --temp 0 --json --session " + file;
    const auto one = run_json("generate -m " + kStories + " --memory " + memory +
                              " --ctx-train 512 --temp 0 --json -p 'Once upon a time' -n 16");
    const auto a = run_json(common + " -p 'Once upon a time' -n 8");
    const std::string held = "Once upon a time" + a["text"].get<std::string>();
    const auto b = run_json(common + " -p '" + held + "' -n 8");
    EXPECT_EQ(b["n_prompt"], 1) << memory;  // only the last token is read again
    std::vector<int> want(one["tokens"].begin() + 8, one["tokens"].end());
    EXPECT_EQ(b["tokens"].get<std::vector<int>>(), want) << memory;
    // Read-only: the file is not changed by a --session-ro run.
    std::ifstream f1(file, std::ios::binary);
    const std::string before((std::istreambuf_iterator<char>(f1)), {});
    run_json(common + " --session-ro -p ' and then' -n 4");
    std::ifstream f2(file, std::ios::binary);
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f2)), {}), before) << memory;
    std::remove(file.c_str());
  }
}

// of 32).
TEST(Cli, GenerateWithF16AndQ8_0KvCacheMatchesF32) {
  const std::string args =
      "generate -m " + kStories + " -p 'Once upon a time' -n 30 --temp 0 --json";
  const auto f32 = run_json(args + " --kv-type f32"), f16 = run_json(args + " --kv-type f16"),
             dflt = run_json(args);
  EXPECT_EQ(f16["tokens"], f32["tokens"]);
  EXPECT_EQ(f16["text"], f32["text"]);
  EXPECT_EQ(dflt["tokens"], f16["tokens"]);
  EXPECT_EQ(f32["text"].get<std::string>().rfind(", there was a little girl named Lily.", 0), 0u);
  const std::string pk = "generate -m " + shared_path("models/passkey-llama-tiny.gguf") +
                         " -p 'Once upon a time' -n 30 --temp 0 --json";
  const auto pk32 = run_json(pk + " --kv-type f32"), pk8 = run_json(pk + " --kv-type q8_0"),
             pk16 = run_json(pk);
  EXPECT_EQ(pk16["text"], pk32["text"]);
  EXPECT_EQ(pk8["text"], pk32["text"]);
}

// bench reports the KV type (f16 by default), and its KV MiB are the bytes as stored.
TEST(Cli, BenchReportsKvTypeAndStoredBytes) {
  const std::string args = "bench -m " + shared_path("models/passkey-llama-tiny.gguf") +
                           " -p 200 -n 4 --repeat 1 --json -t 1";
  const auto f32 = run_json(args + " --kv-type f32"), f16 = run_json(args),
             q8 = run_json(args + " --kv-type q8_0");
  EXPECT_EQ(f32[0]["kv_type"], "f32");
  EXPECT_EQ(f16[0]["kv_type"], "f16");
  EXPECT_EQ(q8[0]["kv_type"], "q8_0");
  EXPECT_EQ(f16[0]["memory"], "full (f16 KV)");
  EXPECT_EQ(f32[0]["memory"], "full (f32 KV)");
  const double mb32 = f32[0]["kv_mb"], mb16 = f16[0]["kv_mb"], mb8 = q8[0]["kv_mb"];
  EXPECT_GT(mb32, 0.0);
  EXPECT_DOUBLE_EQ(mb16 * 2, mb32);
  EXPECT_DOUBLE_EQ(mb8 * 128, mb32 * 34);
}

TEST(Cli, GenerateIsReproducibleWithSeed) {
  const std::string args =
      "generate -m " + kStories + " -p 'Once upon a time' -n 30 --temp 1 --seed 7 --json";
  EXPECT_EQ(run_json(args)["tokens"], run_json(args)["tokens"]);
}

TEST(Cli, PplJsonAndWindows) {
  const std::string dir = test::temp_dir();
  std::string out;
  ASSERT_EQ(run_command(longctx_binary() + " sample-text -m " + kStories + " -o " + dir +
                            "/t.txt --tokens 1200 --seed 3",
                        &out),
            0)
      << out;
  const auto j = run_json("ppl -m " + kStories + " -f " + dir + "/t.txt --ctx 128 --json");
  const int windows = j["windows"];
  EXPECT_GE(windows, 8);
  EXPECT_EQ(j["tokens_scored"], windows * (128 - 1 - 64));
  EXPECT_GT(j["ppl"].get<double>(), 1.5);
  EXPECT_LT(j["ppl"].get<double>(), 20.0);
  EXPECT_GT(j["stderr"].get<double>(), 0);
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
}

struct BadCase {
  std::string args;
  std::string message;
};

TEST(Cli, BadInputGivesAClearErrorNotACrash) {
  const std::string dir = test::temp_dir();
  {
    std::ofstream(dir + "/junk.gguf") << "this is not a gguf file at all";
    std::ofstream(dir + "/empty.gguf");
  }
  const BadCase cases[] = {
      {"info " + dir + "/missing.gguf", "missing.gguf"},
      {"info " + dir + "/junk.gguf", "magic"},
      {"info " + dir + "/empty.gguf", "empty.gguf"},
      {"generate -m " + kStories + " -n 5", "give either -p TEXT or -f FILE"},
      {"generate -m " + kStories + " -p hi -n 5 --top-p 1.5", "--top-p"},
      {"generate -m " + kStories + " -p hi -n 5 --memory magic", "--memory"},
      {"generate -m " + kStories + " -p hi -n 50 --ctx 10", "--ctx"},
      {"generate -m " + kStories + " -p hi -n 5 --rope-scaling bogus", "bogus"},
      {"generate -m " + kStories + " -p hi -n 5 --rope-scale -2", "-2"},
      {"ppl -m " + kStories + " -f " + dir + "/missing.txt", "missing.txt"},
      {"generate -m " + shared_path("models/vocab/ggml-vocab-gpt-2.gguf") + " -p hi", "no weights"},
      {"generate -m " + kStories + " -p hi -n 5 --kv-type q4_0",
       "memory.kv_type 'q4_0' is unknown"},
      {"generate -m " + kStories + " -p hi -n 5 --kv-type q8_0", "head dim is 8"},
      {"generate -m " + kStories + " -p hi -n 5 --memory streaming --kv-type f16",
       "memory.kv_type f16 applies to memory.policy full only"},
      {"generate -m " + kStories + " -p hi -n 5 --memory infllm --kv-type q8_0",
       "memory.kv_type q8_0 applies to memory.policy full only"},
      {"serve -m " + kStories + " --parallel 0", "--parallel must be >= 1"},
      {"serve -m " + kStories + " --memory magic", "(flag --memory)"},
      {"serve -m " + kStories + " --chat-template bogus", "unknown chat template name 'bogus'"},
      {"serve -m " + kStories + " --api-key-file " + dir + "/missing.key", "missing.key"},
      {"serve -m " + kStories + " --host 203.0.113.9 --port 9", "cannot listen on 203.0.113.9:9"},
  };
  for (const auto& c : cases) {
    std::string out;
    const int rc = run_command(longctx_binary() + " " + c.args, &out);
    EXPECT_EQ(rc, 1) << c.args << "\n" << out;
    EXPECT_NE(out.find("error: "), std::string::npos) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << c.args << "\n" << out;
  }
}

// Decode cost against context: one session per length, rounds interleaved; the JSON carries the
// medians, the ratios to the first length and the memory's own account of each context.
TEST(Cli, BenchContextJson) {
  const auto j = run_json("bench-context -m " + kStories +
                          " --lengths 300,1k --ctx-train 512 --memory infllm -n 8 --rounds 3 "
                          "--json -t 1");
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["context"], 300);
  EXPECT_EQ(j[1]["context"], 1024);
  EXPECT_DOUBLE_EQ(j[0]["ratio_to_first"].get<double>(), 1.0);
  for (const auto& r : j) {
    EXPECT_GT(r["decode_ms_per_token"].get<double>(), 0.0);
    EXPECT_EQ(r["rounds_ms_per_token"].size(), 3u);
    EXPECT_NE(r["memory_stats"].get<std::string>().find("infllm"), std::string::npos);
  }
  // 1,024 tokens (+ 24 decoded) with a 256-token window: blocks were formed and searched.
  EXPECT_NE(j[1]["memory_stats"].get<std::string>().find("searches"), std::string::npos);
  std::string out;
  EXPECT_EQ(run_command(longctx_binary() + " bench-context -m " + kStories + " --lengths 1k -f " +
                            kStories + ".missing",
                        &out),
            1);
  EXPECT_NE(out.find(".missing"), std::string::npos) << out;
  EXPECT_EQ(run_command(longctx_binary() + " bench-context -m " + kStories + " --rounds 0", &out),
            1);
  EXPECT_NE(out.find("--rounds"), std::string::npos) << out;
  // The figure of the results, and of a file that is no such results.
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/ctx.json") << j.dump();
  std::ofstream(dir + "/bad.json") << "{\"context\": 3}";
  ASSERT_EQ(run_command(longctx_binary() + " plot-context infllm=" + dir + "/ctx.json --svg " +
                            dir + "/ctx.svg --metric memory",
                        &out),
            0)
      << out;
  std::ifstream svg(dir + "/ctx.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("data-series=\"infllm\" data-length=\"1024\""), std::string::npos);
  EXPECT_NE(text.find("KV memory held in RAM"), std::string::npos);
  EXPECT_EQ(
      run_command(longctx_binary() + " plot-context " + dir + "/bad.json --svg " + dir + "/bad.svg",
                  &out),
      1);
  EXPECT_NE(out.find("'bad' is not a bench-context results list"), std::string::npos) << out;
  EXPECT_EQ(run_command(longctx_binary() + " plot-context " + dir + "/ctx.json --svg " + dir +
                            "/x.svg --metric ppl",
                        &out),
            1);
  EXPECT_NE(out.find("--metric 'ppl'"), std::string::npos) << out;
}

TEST(Cli, EveryCommandHasHelp) {
  for (const char* cmd : {"info", "tokenize", "generate", "ppl", "sample-text", "bench",
                          "bench-context", "plot-context"}) {
    std::string out;
    EXPECT_EQ(run_command(longctx_binary() + " " + cmd + " --help", &out), 0) << cmd;
    EXPECT_NE(out.find("Usage"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace lc
