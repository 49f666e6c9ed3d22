// The one table from command-line flags to session settings (SessionSpec fields), with
// llama.cpp's flag names as aliases, and the flag names the CLI adds to errors about settings.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "engine/session_spec.h"

namespace lc::app {

enum class FlagGroup { Run, Memory, Rope };

// One row per flag that fills a setting.
struct SettingFlag {
  const char* names;    // CLI11 names; the first long name is the flag's name in messages
  const char* setting;  // the setting it fills, e.g. "memory.n_local"
  FlagGroup group;
  const char* help;
  const char* default_text;  // shown in --help ("" = none)
  // Parses `value` into the spec; lc::Error naming `flag` when it does not parse.
  void (*set)(SessionSpec& spec, const std::string& value, const std::string& flag);
};

const std::vector<SettingFlag>& setting_flags();

// The flag that fills `setting` ("" when no flag does), e.g. "--n-local" for memory.n_local.
std::string flag_for_setting(const std::string& setting);

// The message of `e` with the flag names of the settings it is about: "... (flag --n-local)".
std::string message_with_flags(const Error& e);
std::string message_with_flags(const std::string& message,
                               const std::vector<std::string>& settings);

// Names a RoPE fix's settings as flags ("--rope-scaling yarn --rope-scale 4 ...").
std::string setting_flags_text(const std::vector<std::pair<std::string, std::string>>& settings);

// The flags of a command, bound to strings; spec() turns the ones given into a SessionSpec.
class SettingOptions {
 public:
  void add(CLI::App& cmd, FlagGroup group);
  // Parses every flag that was given (in table order) into `spec`, recording "cli:FLAG" as each
  // setting's origin.
  void fill(SessionSpec& spec) const;
  // The words (flag and value) of the flags given, e.g. to pass them on to a flag string.
  std::vector<std::string> given_words(FlagGroup group) const;

 private:
  struct Bound {
    const SettingFlag* row;
    std::unique_ptr<std::string> value;
    CLI::Option* opt;
  };
  std::vector<Bound> bound_;
};

// Parses one RoPE flag (llama.cpp's names) into `o`, recording "cli:FLAG" as the setting's origin.
// Returns false when `flag` is not a RoPE flag; lc::Error on a value that does not parse (the
// message names the flag, the value and what is expected).
bool rope_parse_flag(RopeOverrides& o, std::string_view flag, const std::string& value);
// Help text for the RoPE flags, one flag per line.
const char* rope_flags_help();

// llama.cpp's single-dash names with more than one letter ("-ngl", "-fa", "-ctk", "-ctv", "-ub"),
// rewritten to the long names the commands accept.
std::vector<std::string> rewrite_llama_cpp_args(int argc, char** argv);

// llama.cpp flags that have no meaning on this CPU engine (GPU layers, flash attention, warm-up,
// memory mapping): accepted, with a note on stderr saying what they mean here.
void add_compat_flags(CLI::App& cmd);

}  // namespace lc::app
