// The passkey evaluation: retrieval accuracy over a grid of prompt lengths (in the model's
// tokens) and needle depths, for any model / RoPE / KV-memory configuration; resumable. Builds
// the prompts (passkey.h), generates greedily, scores the answers, keeps the results file.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/session_spec.h"
#include "eval/grid.h"
#include "eval/passkey.h"
#include "model/model.h"

namespace lc::eval {

// Settings, named passkey.* in errors.
struct PasskeySettings {
  std::vector<int64_t> lengths;         // passkey.lengths: prompt lengths in tokens, BOS included
  std::vector<double> depths;           // passkey.depths, each in [0, 1]
  std::optional<PasskeyFormat> format;  // passkey.format: nullopt = infinitebench for models
                                        // with a chat template (unless chat is off), else landmark
  std::string chat_template;            // passkey.chat_template: a family name ("" = detect)
  bool chat = true;                     // passkey.chat: wrap infinitebench in the chat template
  std::string filler_name;              // passkey.filler: a text's name ("" = the noise line)
  std::string filler_text;              // and its contents
  std::string separator = "newline";    // passkey.separator: newline or space (landmark only)
  int64_t trials = 5;                   // passkey.trials per cell
  int64_t n_predict = 8;                // n_predict: answer tokens (greedy)
  int64_t seed = 0;                     // passkey.seed of the keys and filler choices
};

// lc::Error naming the setting for a value out of range (before any model is loaded).
void check_passkey_settings(const PasskeySettings& s);

class PasskeyEval {
 public:
  // Checks the settings against the model (prompt form, chat template, every length long enough
  // for the prompt without filler); lc::Error naming the setting otherwise.
  PasskeyEval(std::shared_ptr<const Model> model, const SessionOptions& session,
              const std::string& model_path, PasskeySettings settings);
  ~PasskeyEval();

  // The most tokens a session holds: the longest prompt and its answer.
  int64_t longest_context() const;

  // Runs every cell not kept from files.resume, rewriting the results file and figure after
  // each.
  void run(const CheckpointFiles& files, const GridProgressFn& progress);

  // The results file as it stands.
  nlohmann::json results() const;
  // The accuracy table (rows: lengths, columns: depths, with means) and the overall line.
  std::string table() const;
  // "total time ..." of this run, with the cells kept from the earlier one.
  std::string summary() const;
  // The figure files written.
  std::vector<std::string> figure_files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lc::eval
