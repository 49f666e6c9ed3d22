// `longctx eval ppl-curve` end to end: every cell is exactly what `longctx ppl` computes with the
// same flags, {s}/{L}/{L0} substitution, k/m lengths, cells that cannot run, and clear errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/paths.h"

namespace lc {
namespace {

using nlohmann::json;
using test::longctx_binary;
using test::run_command;
using test::shared_path;

const std::string kStories = shared_path("models/stories260K.gguf");

// One sampled text (about 1,500 tokens) shared by the tests of this file.
const std::string& text_file() {
  static const std::string path = [] {
    const std::string p = test::temp_dir() + "/t.txt";
    std::string out;
    const int rc = run_command(longctx_binary() + " sample-text -m " + kStories + " -o " + p +
                                   " --tokens 1500 --seed 3 --max-doc 256",
                               &out);
    EXPECT_EQ(rc, 0) << out;
    return p;
  }();
  return path;
}

std::string curve_cmd(const std::string& args) {
  return longctx_binary() + " eval ppl-curve -m " + kStories + " -f " + text_file() + " -t 2 " +
         args;
}

// Runs ppl-curve with --json and returns the JSON file's contents (stdout: the table).
json run_curve(const std::string& args, std::string* table = nullptr) {
  const std::string path = test::temp_dir() + "/curve.json";
  std::string out;
  const int rc = run_command(curve_cmd(args + " --json " + path), &out, false);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  if (table) *table = out;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

json run_ppl(const std::string& args) {
  std::string out;
  const int rc = run_command(
      longctx_binary() + " ppl -m " + kStories + " -f " + text_file() + " -t 2 --json " + args,
      &out, false);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return json::parse(out);
}

const json& cell(const json& j, const std::string& config, int64_t ctx) {
  for (const json& c : j["cells"])
    if (c["config"] == config && c["ctx"] == ctx) return c;
  ADD_FAILURE() << "no cell " << config << " @ " << ctx << " in " << j.dump(1);
  static const json none;
  return none;
}

void expect_same(const json& c, const json& p) {
  EXPECT_EQ(c["status"], "ok");
  // Exact: the same windows, the same RoPE table, the same arithmetic.
  EXPECT_EQ(c["ppl"].get<double>(), p["ppl"].get<double>());
  EXPECT_EQ(c["stderr"].get<double>(), p["stderr"].get<double>());
  EXPECT_EQ(c["windows"], p["windows"]);
  EXPECT_EQ(c["tokens_scored"], p["tokens_scored"]);
  EXPECT_EQ(c["rope"], p["rope"]);
  EXPECT_EQ(c["memory"], p["memory"]);
}

TEST(EvalPplCurve, CellsAgreeExactlyWithPpl) {
  const json j = run_curve(
      "--lengths 128,256 --orig-ctx 64 --config yarn "
      "--config 'stream=--memory streaming --n-local 64 --n-init 8 --rope-scaling linear "
      "--rope-scale {s}'");
  EXPECT_EQ(j["complete"], true);
  EXPECT_EQ(j["cells"].size(), 4u);

  const json& y = cell(j, "yarn", 256);
  EXPECT_EQ(y["flags"], "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 64");
  expect_same(y, run_ppl("--ctx 256 --rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 64"));
  EXPECT_EQ(y["tokens_scored"], y["windows"].get<int>() * (256 - 1 - 128));
  EXPECT_GT(y["tokens_per_s"].get<double>(), 0);

  const json& s = cell(j, "stream", 128);
  EXPECT_EQ(s["flags"],
            "--memory streaming --n-local 64 --n-init 8 --rope-scaling linear --rope-scale 2");
  EXPECT_NE(s["memory"].get<std::string>().find("streaming"), std::string::npos);
  expect_same(s, run_ppl("--ctx 128 --memory streaming --n-local 64 --n-init 8 "
                         "--rope-scaling linear --rope-scale 2"));
  // A different configuration really is different.
  EXPECT_NE(cell(j, "yarn", 128)["ppl"].get<double>(), s["ppl"].get<double>());
}

TEST(EvalPplCurve, PlaceholdersAreSubstitutedPerLength) {
  const json j = run_curve(
      "--lengths 64,128,200 --orig-ctx 96 --chunks 1 "
      "--config 'probe=--rope-scaling linear --rope-scale {s} --yarn-orig-ctx {L} "
      "--rope-freq-base {L0}0'");
  // s = max(1, L / L0): clamped to 1 below the trained context, exact decimal text above it.
  EXPECT_EQ(cell(j, "probe", 64)["flags"],
            "--rope-scaling linear --rope-scale 1 --yarn-orig-ctx 64 --rope-freq-base 960");
  EXPECT_EQ(cell(j, "probe", 128)["flags"],
            "--rope-scaling linear --rope-scale 1.3333333333333333 --yarn-orig-ctx 128 "
            "--rope-freq-base 960");
  EXPECT_EQ(cell(j, "probe", 200)["scale"].get<double>(), 200.0 / 96.0);
  EXPECT_EQ(cell(j, "probe", 128)["windows"], 1);
  EXPECT_NE(cell(j, "probe", 128)["rope"].get<std::string>().find("linear"), std::string::npos);
  EXPECT_EQ(j["orig_ctx"], 96);
}

TEST(EvalPplCurve, LengthSuffixesAndCellsThatCannotRun) {
  std::string table;
  const json j = run_curve("--lengths 1k,1M --orig-ctx 512 --chunks 1 --config none", &table);
  EXPECT_EQ(j["lengths"], json::parse("[1024, 1048576]"));
  EXPECT_EQ(cell(j, "none", 1024)["status"], "ok");
  const json& big = cell(j, "none", 1048576);
  EXPECT_EQ(big["status"], "too_short");
  EXPECT_NE(big["reason"].get<std::string>().find("fewer than one window"), std::string::npos);
  EXPECT_EQ(big["scale"].get<double>(), 2048.0);
  // The table says so too.
  EXPECT_NE(table.find("n/a (text too short)"), std::string::npos) << table;
  EXPECT_NE(table.find("1048576"), std::string::npos) << table;
}

TEST(EvalPplCurve, DefaultConfigsAreThePresets) {
  std::string table;
  const json j = run_curve("--lengths 64 --orig-ctx 32 --chunks 1 --markdown", &table);
  std::vector<std::string> names;
  for (const json& c : j["configs"]) names.push_back(c["name"]);
  EXPECT_EQ(names,
            (std::vector<std::string>{"none", "linear", "dynamic", "ntk", "yarn", "llama3"}));
  EXPECT_EQ(cell(j, "llama3", 64)["flags"],
            "--rope-scaling llama3 --rope-scale 2 --yarn-orig-ctx 32");
  EXPECT_NE(table.find("| ctx |"), std::string::npos) << table;
  EXPECT_NE(table.find(" ± "), std::string::npos) << table;
}

TEST(EvalPplCurve, LongropePresetUsesTheFactorFile) {
  // A directory name with a space and a quote: the preset must quote the path in its flags.
  const std::string dir = test::temp_dir() + "/it's here";
  ASSERT_EQ(run_command("mkdir -p \"" + dir + "\"", nullptr), 0);
  // stories260K has 4 rotary pairs; {s} in the file name picks one file per length.
  std::ofstream(dir + "/f-2.json")
      << R"({"long_factor": [1, 1.5, 2, 2], "short_factor": [1, 1, 1, 1]})";
  const json j =
      run_curve("--lengths 64 --orig-ctx 32 --chunks 1 --config longrope --rope-factors \"" + dir +
                "/f-{s}.json\"");
  const json& c = cell(j, "longrope", 64);
  EXPECT_EQ(c["status"], "ok");
  EXPECT_NE(c["rope"].get<std::string>().find("longrope"), std::string::npos);
  expect_same(c, run_ppl("--ctx 64 --rope-scaling longrope --rope-factors \"" + dir +
                         "/f-2.json\" --yarn-orig-ctx 32 --chunks 1"));
}

TEST(EvalPplCurve, BadInputGivesAClearError) {
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"--config bogus", "unknown preset"},
      {"--config none,bogus", "bogus"},
      {"--config longrope", "--rope-factors"},
      {"--lengths 2q --config none", "2q"},
      {"--lengths 0 --config none", "length '0'"},
      {"--lengths 64,64 --config none", "twice"},
      {"--config 'x=--rope-scale {t}'", "{t}"},
      {"--config 'x=--rope-scaling nope'", "nope"},
      {"--config 'x=--no-such-flag 3'", "--no-such-flag"},
      {"--config 'x=--rope-scale'", "config 'x'"},
      {"--config 'x=--memory magic'", "magic"},
      {"--config none --config 'none=--rope-scaling none'", "used twice"},
      {"--config '=--rope-scaling none'", "empty"},
  };
  for (const auto& c : cases) {
    std::string out;
    const std::string args =
        c.args.find("--lengths") == std::string::npos ? "--lengths 64 " + c.args : c.args;
    const int rc = run_command(curve_cmd(args), &out);
    EXPECT_EQ(rc, 1) << c.args << "\n" << out;
    EXPECT_NE(out.find("error: "), std::string::npos) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << c.args << "\n" << out;
  }
}

TEST(EvalPplCurve, ResumeKeepsFinishedCellsAndRunsTheRest) {
  const std::string path = test::temp_dir() + "/resume.json";
  std::remove(path.c_str());
  std::string out;
  // First run: two lengths; the file is created by --resume when missing.
  ASSERT_EQ(
      run_command(curve_cmd("--lengths 64,128 --config none --chunks 2 --resume " + path), &out), 0)
      << out;
  auto read = [&] {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  };
  const json first = read();
  ASSERT_EQ(first["cells"].size(), 2u);
  // Second run adds a length and a configuration: the two finished cells are kept as they were
  // (their seconds too, which a re-run would change), the others are measured.
  ASSERT_EQ(run_command(curve_cmd("--lengths 64,128,256 --config none,linear --chunks 2 "
                                  "--resume " +
                                  path),
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("2 of 6 cells already measured"), std::string::npos) << out;
  const json second = read();
  ASSERT_EQ(second["cells"].size(), 6u);
  for (int64_t L : {64, 128}) {
    EXPECT_EQ(cell(second, "none", L)["ppl"], cell(first, "none", L)["ppl"]);
    EXPECT_EQ(cell(second, "none", L)["seconds"], cell(first, "none", L)["seconds"]);
  }
  for (const json& c : second["cells"]) EXPECT_EQ(c["status"], "ok") << c.dump();
  expect_same(cell(second, "linear", 256), run_ppl("--ctx 256 --chunks 2 --rope-scaling linear "
                                                   "--rope-scale 1"));
  // Other settings: a clear error, the file left alone.
  EXPECT_EQ(run_command(curve_cmd("--lengths 64 --config none --chunks 1 --resume " + path), &out),
            1);
  EXPECT_NE(out.find("chunks"), std::string::npos) << out;
  EXPECT_EQ(read(), second);
  std::ofstream(path) << "{\"not\": \"a curve\"}";
  EXPECT_EQ(run_command(curve_cmd("--lengths 64 --config none --resume " + path), &out), 1);
  EXPECT_NE(out.find("not a ppl-curve JSON file"), std::string::npos) << out;
}

TEST(EvalPplCurve, EvalIsAGroup) {
  std::string out;
  EXPECT_EQ(run_command(longctx_binary() + " eval --help", &out), 0);
  EXPECT_NE(out.find("ppl-curve"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(longctx_binary() + " eval ppl-curve --help", &out), 0);
  for (const char* p : {"none", "linear", "dynamic", "ntk", "yarn", "llama3", "longrope", "{s}"})
    EXPECT_NE(out.find(p), std::string::npos) << p << "\n" << out;
  out.clear();
  EXPECT_NE(run_command(longctx_binary() + " eval", &out), 0) << out;
}

}  // namespace
}  // namespace lc
