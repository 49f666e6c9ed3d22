// Token counts as people write them ("512", "2k", "1m"), for the evaluations' grids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lc::eval {

// "512" -> 512, "2k" -> 2048, "1m" -> 1048576 (k = 1024, m = 1024 * 1024; either case).
// lc::Error on anything else, zero, or an overflow.
int64_t parse_length(const std::string& s);
// Comma-separated lengths in the given order; lc::Error naming `setting` (e.g.
// "passkey.lengths") on a bad or repeated entry.
std::vector<int64_t> parse_lengths(const std::string& s, const std::string& setting);

}  // namespace lc::eval
