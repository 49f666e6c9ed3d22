// The evaluations' grid runner (eval/grid.h): cells, the results file rewritten after each cell,
// resuming, progress reports, the text table; and the machine object of every results file.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/grid.h"
#include "eval/machine.h"
#include "support/paths.h"

namespace lc::eval {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(EvalGrid, CellsAreLengthMajorAndPendingUntilFinished) {
  Grid g(2, 3);
  EXPECT_EQ(g.size(), 6u);
  EXPECT_EQ(g.index(1, 2), 5u);
  EXPECT_EQ(g.row(4), 1u);
  EXPECT_EQ(g.column(4), 1u);
  g.resume(1);
  g.finish(4);
  EXPECT_TRUE(g.resumed(1));
  EXPECT_FALSE(g.resumed(4));
  EXPECT_EQ(g.pending(), (std::vector<size_t>{0, 2, 3, 5}));
  EXPECT_EQ(g.resumed_count(), 1u);
  EXPECT_FALSE(g.complete());
  for (size_t i : g.pending()) g.finish(i);
  EXPECT_TRUE(g.complete());
  EXPECT_THROW(g.index(2, 0), InternalError);
}

TEST(EvalGrid, RunsPendingCellsAndRewritesTheCheckpointAfterEach) {
  const std::string path = test::temp_dir() + "/grid.json";
  std::remove(path.c_str());
  Grid g(1, 3);
  g.resume(1);
  Checkpoint cp({path, "", ""});
  std::vector<size_t> ran;
  std::vector<std::pair<size_t, bool>> done;
  std::vector<json> seen;  // the file as it was when each cell started
  GridRun run;
  run.run_cell = [&](size_t i) {
    std::ifstream in(path);
    seen.push_back(in ? read_json(path) : json());
    ran.push_back(i);
  };
  run.cell_done = [&](size_t i, bool r) { done.emplace_back(i, r); };
  run.results = [&] { return json{{"ran", ran}, {"complete", g.complete()}}; };
  std::vector<GridProgress> reports;
  run_grid(g, cp, run, [&](const GridProgress& p) { reports.push_back(p); });
  EXPECT_EQ(ran, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(done, (std::vector<std::pair<size_t, bool>>{{0, true}, {1, false}, {2, true}}));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].is_null());                       // nothing written before the first cell
  EXPECT_EQ(seen[1]["ran"], (std::vector<size_t>{0}));  // written after it
  const json last = read_json(path);
  EXPECT_EQ(last["ran"], (std::vector<size_t>{0, 2}));
  EXPECT_TRUE(last["complete"].get<bool>());
  EXPECT_TRUE(reports.empty());  // the runner itself only reports figure trouble
  EXPECT_TRUE(cp.figure_files().empty());
}

TEST(EvalGrid, CheckpointFilesFollowTheResultsFile) {
  const CheckpointFiles a = checkpoint_files("out/pk.json", "", "");
  EXPECT_EQ(a.results, "out/pk.json");
  EXPECT_EQ(a.figure, "out/pk.svg");
  EXPECT_EQ(a.resume, "");
  const CheckpointFiles b = checkpoint_files("", "", "old.json");  // a resumed run keeps writing
  EXPECT_EQ(b.results, "old.json");
  EXPECT_EQ(b.figure, "old.svg");
  EXPECT_EQ(b.resume, "old.json");
  EXPECT_EQ(checkpoint_files("", "fig.svg", "").figure, "fig.svg");
  EXPECT_EQ(checkpoint_files("", "", "").figure, "");
}

TEST(EvalGrid, ResumeNeedsTheSameInputs) {
  const std::string dir = test::temp_dir();
  EXPECT_FALSE(read_earlier_run(dir + "/no-such-run.json", ResultKind::Passkey));
  const std::string other = dir + "/grid-other.json";
  std::ofstream(other) << R"({"configs": [], "lengths": [64], "cells": []})";
  try {
    read_earlier_run(other, ResultKind::Passkey);
    FAIL() << "a ppl-curve file taken for a passkey run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a passkey JSON file"), std::string::npos) << e.what();
    EXPECT_EQ(e.settings(), std::vector<std::string>{"resume"});
  }
  EXPECT_TRUE(read_earlier_run(other, ResultKind::PplCurve));

  const json now = {{"seed", 2}, {"trials", 4}};
  EXPECT_NO_THROW(require_same_inputs("x.json", {{"seed", 2}, {"trials", 4}, {"extra", 1}}, now));
  try {
    require_same_inputs("x.json", {{"seed", 1}, {"trials", 4}}, now);
    FAIL() << "another seed accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("seed is 1 there and 2 now"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("--"), std::string::npos) << msg;  // settings, not flags
  }
  EXPECT_THROW(require_same_inputs("x.json", {{"seed", 2}}, now), Error);  // trials missing
}

TEST(EvalGrid, TextTablePlainAndMarkdown) {
  TextTable t;
  t.rows = {{"ctx", "s", "yarn"}, {"512", "1", "3.392 \xC2\xB1 0.056"}, {"16384", "32", "n/a"}};
  t.right = {true, true, false};
  t.gap = "   ";
  EXPECT_EQ(format_table(t),
            "  ctx    s   yarn\n"
            "  512    1   3.392 \xC2\xB1 0.056\n"
            "16384   32   n/a\n");
  EXPECT_EQ(format_table(t, true),
            "|   ctx |   s | yarn          |\n"
            "| ----: | --: | ------------- |\n"
            "|   512 |   1 | 3.392 \xC2\xB1 0.056 |\n"
            "| 16384 |  32 | n/a           |\n");
}

TEST(EvalMachine, OneObjectSaysWhatRanTheEvaluation) {
  const json m = machine_json();
  for (const char* key : {"cpu", "nproc", "threads", "isa", "compiler", "build", "date"})
    EXPECT_TRUE(m.contains(key)) << key << " in " << m.dump();
  EXPECT_GE(m["nproc"].get<int64_t>(), 1);
  EXPECT_EQ(m["date"].get<std::string>().size(), 20u) << m.dump();  // 2026-01-02T03:04:05Z
}

}  // namespace
}  // namespace lc::eval
