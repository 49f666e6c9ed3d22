// The safetensors reader: a written file reads back; every malformed header is an lc::Error
// naming the file, the tensor (where there is one) and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "support/paths.h"

namespace lc {
namespace {

// An image with `header` as its JSON and `data_bytes` zero bytes of data; `len` overrides the
// header length field.
std::vector<uint8_t> image(const std::string& header, size_t data_bytes,
                           std::optional<uint64_t> len = std::nullopt) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  const uint64_t n = len.value_or(header.size());
  for (int k = 0; k < 8; ++k) b[static_cast<size_t>(k)] = static_cast<uint8_t>(n >> (8 * k));
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsFile::from_bytes(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Safetensors, WrittenFileReadsBack) {
  SafetensorsWriter w;
  const std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<uint16_t> h(a.size()), bf(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    h[i] = f32_to_fp16(a[i]);
    bf[i] = f32_to_bf16(a[i]);
  }
  w.add("a", "F32", {2, 3}, a.data(), a.size() * 4);
  w.add("b.half", "F16", {6}, h.data(), h.size() * 2);
  w.add("c.bf", "BF16", {3, 2}, bf.data(), bf.size() * 2);
  w.add("empty", "F32", {0, 4}, nullptr, 0);
  w.set_metadata("format", "pt");
  const std::string dir = test::temp_dir();
  w.write(dir + "/m.safetensors");
  auto f = SafetensorsFile::open(dir + "/m.safetensors");
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafetensorsTensor* t = f->tensor("a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(*t->type, TensorType::F32);
  EXPECT_EQ(std::memcmp(t->data, a.data(), 24), 0);
  const SafetensorsTensor* hb = f->tensor("b.half");
  ASSERT_NE(hb, nullptr);
  EXPECT_EQ(*hb->type, TensorType::F16);
  uint16_t x = 0;
  std::memcpy(&x, hb->data + 4, 2);
  EXPECT_EQ(fp16_to_f32(x), 3.25f);
  EXPECT_EQ(*f->tensor("c.bf")->type, TensorType::BF16);
  EXPECT_EQ(f->tensor("missing"), nullptr);
}

TEST(Safetensors, MalformedHeadersAreErrorsNamingTheProblem) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    std::vector<std::string> expect;  // substrings of the message
  };
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]})";
  const std::vector<Case> cases = {
      {"too short", {1, 2, 3}, {"bad.safetensors", "too short"}},
      {"header beyond the file", image("{}", 0, 1000), {"bad.safetensors", "beyond the end"}},
      {"absurd header length", image("{}", 0, uint64_t{1} << 40), {"absurd"}},
      {"not JSON", image("{\"w\": ", 0), {"not valid JSON"}},
      {"JSON array", image("[1, 2]", 0), {"array", "expected an object"}},
      {"JSON string", image("\"hi\"", 0), {"string", "expected an object"}},
      {"entry not an object", image(R"({"w": 3})", 0), {"tensor 'w'", "not an object"}},
      {"no dtype",
       image(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4),
       {"tensor 'w'", "dtype"}},
      {"unknown dtype",
       image(R"({"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 4]}})", 4),
       {"tensor 'w'", "unknown dtype \"F7\""}},
      {"negative dimension",
       image(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       {"tensor 'w'", "not a dimension"}},
      {"overflowing shape",
       image(R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776, 1099511627776],
              "data_offsets": [0, 4]}})",
             4),
       {"tensor 'w'", "too many elements"}},
      {"offsets outside the data",
       image("{" + ok_entry + "}", 8),
       {"tensor 'w'", "outside the data section (8 bytes)"}},
      {"offsets reversed",
       image(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8),
       {"tensor 'w'", "end before they begin"}},
      {"dtype and shape disagree with the byte range",
       image(R"({"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 16]}})", 16),
       {"tensor 'w'", "need 8 bytes", "hold 16"}},
      {"overlapping tensors",
       image("{" + ok_entry + R"(, "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
             16),
       {"overlaps", "'w'", "'v'"}},
      {"a hole before a tensor",
       image(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 16),
       {"bytes 0..8", "before tensor 'w'", "belong to no tensor"}},
      {"bytes after the last tensor",
       image("{" + ok_entry + "}", 20),
       {"last 4 bytes", "belong to no tensor"}},
      {"duplicate name", image("{" + ok_entry + ", " + ok_entry + "}", 16), {"'w' twice"}},
      {"deep nesting",
       image("{\"__metadata__\": " + std::string(200, '[') + std::string(200, ']') + "}", 0),
       {"deeper"}},
      {"metadata not strings",
       image(R"({"__metadata__": {"a": 1}})", 0),
       {"__metadata__", "'a'", "not a string"}},
      {"offsets not numbers",
       image(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", 4]}})", 4),
       {"tensor 'w'", "not byte offsets"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string msg = error_of(c.bytes);
    EXPECT_NE(msg, "no error");
    for (const std::string& e : c.expect) EXPECT_NE(msg.find(e), std::string::npos) << msg;
  }
  // The same image, well-formed, is accepted (the table's errors come from the mutation).
  EXPECT_EQ(error_of(image("{" + ok_entry + "}", 16)), "no error");
}

TEST(Safetensors, ShardedSetAndMissingShard) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir();
  const std::vector<float> v = {1, 2, 3, 4};
  SafetensorsWriter a, b;
  a.add("x", "F32", {4}, v.data(), 16);
  b.add("y", "F32", {2, 2}, v.data(), 16);
  a.write(dir + "/s-1.safetensors");
  b.write(dir + "/s-2.safetensors");
  std::ofstream(dir + "/index.json")
      << R"({"metadata": {}, "weight_map": {"x": "s-1.safetensors", "y": "s-2.safetensors"}})";
  const SafetensorsSet set = SafetensorsSet::open(dir + "/index.json");
  EXPECT_EQ(set.files().size(), 2u);
  const SafetensorsFile* f = nullptr;
  ASSERT_NE(set.find("y", &f), nullptr);
  EXPECT_EQ(f->path(), dir + "/s-2.safetensors");
  EXPECT_EQ(set.names(), (std::vector<std::string>{"x", "y"}));

  const auto error_of_index = [&](const std::string& text) {
    std::ofstream(dir + "/bad.json") << text;
    try {
      SafetensorsSet::open(dir + "/bad.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m =
      error_of_index(R"({"weight_map": {"x": "s-1.safetensors", "z": "s-9.safetensors"}})");
  EXPECT_NE(m.find("shard s-9.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("missing"), std::string::npos) << m;
  m = error_of_index(R"({"weight_map": {"x": "s-2.safetensors"}})");
  EXPECT_NE(m.find("tensor 'x'"), std::string::npos) << m;
  m = error_of_index(R"({"weight_map": {"x": "../s-1.safetensors"}})");
  EXPECT_NE(m.find("same folder"), std::string::npos) << m;
  m = error_of_index(R"([1])");
  EXPECT_NE(m.find("weight_map"), std::string::npos) << m;
}

}  // namespace
}  // namespace lc
