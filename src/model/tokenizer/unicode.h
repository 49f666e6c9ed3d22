// UTF-8 helpers shared by the tokenizers: sequence lengths, lossy decoding, validation with
// incomplete-tail detection (for streaming), and the GPT-2 byte <-> unicode mapping used by
// byte-level BPE vocabularies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lc::uni {

inline constexpr uint32_t kReplacement = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces, from its high nibble (1 for ASCII and for
// stray continuation bytes, 2, 3 or 4). Never reads past the byte itself.
size_t utf8_len(uint8_t lead);

void append_utf8(std::string& out, uint32_t cp);

// Lenient decoding: each byte that does not start a well-formed sequence becomes U+FFFD and
// decoding resumes at the next byte. Surrogates and values past U+10FFFF also become U+FFFD, so
// the result always re-encodes to valid UTF-8.
std::vector<uint32_t> decode_utf8_lossy(std::string_view s);
std::string encode_utf8(const std::vector<uint32_t>& cps);

enum class Utf8Status { Valid, Invalid, Incomplete };
// Classifies the sequence starting at s[pos] (Unicode's well-formed byte sequences table).
// Valid: len = its length. Invalid: len = the maximal ill-formed subpart (>= 1), which is
// replaced by one U+FFFD. Incomplete: the bytes are a proper prefix of a valid sequence and the
// string ends before it is complete.
Utf8Status utf8_classify(std::string_view s, size_t pos, size_t& len);

// Replaces every ill-formed subpart (including an incomplete tail) by U+FFFD.
std::string sanitize_utf8(std::string_view s);

// GPT-2 byte-level mapping: every byte value has a printable code point; the UTF-8 of that code
// point stands for the byte inside vocabulary entries ("Ġ" for space, "Ċ" for newline ...).
const std::string& byte_to_unicode(uint8_t b);
// The byte a code point stands for, or -1 when it is not part of the mapping.
int unicode_to_byte(uint32_t cp);

}  // namespace lc::uni
