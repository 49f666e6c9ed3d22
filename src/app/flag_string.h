// A configuration written as one string of command-line flags, e.g.
// "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 512 --memory streaming --n-local 256", as
// `longctx eval` commands take it (one string per configuration).
#pragma once

#include <string>
#include <vector>

#include "app/common.h"

namespace lc::app {

// Splits a flag string into words like a POSIX shell does for simple cases: words are separated
// by whitespace; single quotes keep everything literally, double quotes keep whitespace, a
// backslash outside single quotes escapes the next character. lc::Error on an unterminated quote
// or a trailing backslash.
std::vector<std::string> split_flag_string(const std::string& s);

// Parses words with the setting flags every model command has: the RoPE flags, --hf-config, and
// the KV-memory flags (--memory, --n-local, ...), from the one flag table. Both "--flag value" and
// "--flag=value" work; a flag given twice keeps the last value. lc::Error, starting with `what`
// (e.g. "config 'yarn'"), for an unknown flag, a missing value, a stray word or a value that does
// not parse.
SessionSpec parse_flag_words(const std::vector<std::string>& words, const std::string& what);

// The RoPE overrides a flag string sets (the RoPE flags only; anything else is an lc::Error).
RopeOverrides parse_rope_flag_string(const std::string& s, const std::string& what);

}  // namespace lc::app
