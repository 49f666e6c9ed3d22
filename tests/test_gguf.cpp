// GGUF reader/writer: round trips, the real files in the shared data, and a table of malformed
// images that must each be rejected with their own message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/gguf.h"
#include "support/gguf_builder.h"

namespace lc {
namespace {

using test::GgufBytes;

const std::string kModels = std::string(LONGCTX_SHARED_DIR) + "/models";

// Runs f, expects an lc::Error and returns its message.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("unexpected exception type: ") + e.what();
  }
  return "no error";
}

std::string parse_error(std::vector<uint8_t> bytes, const std::string& name = "bad.gguf") {
  return error_of([&] { GgufFile::from_bytes(std::move(bytes), name); });
}

GgufValue scalar(GgufType t, int64_t i, uint64_t u, double f) {
  GgufValue v;
  v.type = t;
  v.i = i;
  v.u = u;
  v.f = f;
  return v;
}

GgufValue array_of(GgufType elem, std::vector<GgufValue> items) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.items = std::move(items);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(GgufRoundTrip, EveryMetadataType) {
  GgufWriter w;
  w.set("u8", scalar(GgufType::U8, 0, 200, 0));
  w.set("i8", scalar(GgufType::I8, -100, 0, 0));
  w.set("u16", scalar(GgufType::U16, 0, 60000, 0));
  w.set("i16", scalar(GgufType::I16, -30000, 0, 0));
  w.set("u32", GgufValue::of_u32(4000000000u));
  w.set("i32", GgufValue::of_i32(-2000000000));
  w.set("f32", GgufValue::of_f32(1.5f));
  w.set("bool", GgufValue::of_bool(true));
  w.set("string", GgufValue::of_str(std::string("h\0llo \xe2\x9c\x93", 10)));
  w.set("u64", GgufValue::of_u64(0xfedcba9876543210ull));
  w.set("i64", scalar(GgufType::I64, std::numeric_limits<int64_t>::min(), 0, 0));
  w.set("f64", scalar(GgufType::F64, 0, 0, 1e300));
  w.set("strs", GgufValue::of_strs({"a", "", "ccc"}));
  w.set("f32s", GgufValue::of_f32s({0.25f, -2.0f}));
  w.set("i32s", GgufValue::of_i32s({1, -2, 3}));
  w.set("empty", array_of(GgufType::U8, {}));
  w.set("bools", array_of(GgufType::BOOL, {GgufValue::of_bool(false), GgufValue::of_bool(true)}));
  w.set("f64s", array_of(GgufType::F64, {scalar(GgufType::F64, 0, 0, -0.125)}));
  // Nested: array of arrays of i32, and three levels with strings at the bottom.
  w.set("nested", array_of(GgufType::ARRAY, {GgufValue::of_i32s({1, 2}), GgufValue::of_i32s({}),
                                             GgufValue::of_i32s({7})}));
  w.set("deep",
        array_of(GgufType::ARRAY, {array_of(GgufType::ARRAY, {GgufValue::of_strs({"x", "yz"})})}));
  w.set("u32", GgufValue::of_u32(7));  // replacing keeps the first position

  auto f = GgufFile::from_bytes(w.to_bytes(), "rt.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_TRUE(f->tensors().empty());
  const std::vector<std::string> order = {
      "u8",  "i8",  "u16",  "i16",  "u32",  "i32",   "f32",   "bool", "string", "u64",
      "i64", "f64", "strs", "f32s", "i32s", "empty", "bools", "f64s", "nested", "deep"};
  ASSERT_EQ(f->metadata().size(), order.size());
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(f->metadata()[k].first, order[k]);

  EXPECT_EQ(f->find("u8")->type, GgufType::U8);
  EXPECT_EQ(f->get_int("u8"), 200);
  EXPECT_EQ(f->get_int("i8"), -100);
  EXPECT_EQ(f->find("i8")->type, GgufType::I8);
  EXPECT_EQ(f->get_int("u16"), 60000);
  EXPECT_EQ(f->get_int("i16"), -30000);
  EXPECT_EQ(f->get_int("u32"), 7);
  EXPECT_EQ(f->find("u32")->type, GgufType::U32);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(f->get_float("f32"), 1.5);
  EXPECT_EQ(f->find("f32")->type, GgufType::F32);
  EXPECT_EQ(f->get_bool("bool"), true);
  EXPECT_EQ(f->get_str("string"), std::string("h\0llo \xe2\x9c\x93", 10));
  EXPECT_EQ(f->find("u64")->u, 0xfedcba9876543210ull);
  EXPECT_EQ(f->find("u64")->type, GgufType::U64);
  EXPECT_EQ(f->get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_float("f64"), 1e300);
  EXPECT_EQ(f->find("f64")->type, GgufType::F64);
  EXPECT_EQ(f->get_str_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f->get_f32_array("f32s"), (std::vector<float>{0.25f, -2.0f}));
  EXPECT_EQ(f->get_i32_array("i32s"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(f->find("empty")->elem_type, GgufType::U8);
  EXPECT_TRUE(f->find("empty")->items.empty());
  const GgufValue* bools = f->find("bools");
  ASSERT_EQ(bools->items.size(), 2u);
  EXPECT_EQ(bools->items[0].u, 0u);
  EXPECT_EQ(bools->items[1].u, 1u);
  EXPECT_EQ(f->get_f32_array("f64s"), (std::vector<float>{-0.125f}));

  const GgufValue* nested = f->find("nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->type, GgufType::ARRAY);
  EXPECT_EQ(nested->elem_type, GgufType::ARRAY);
  ASSERT_EQ(nested->items.size(), 3u);
  EXPECT_EQ(nested->items[0].elem_type, GgufType::I32);
  ASSERT_EQ(nested->items[0].items.size(), 2u);
  EXPECT_EQ(nested->items[0].items[1].i, 2);
  EXPECT_TRUE(nested->items[1].items.empty());
  EXPECT_EQ(nested->items[2].items[0].i, 7);
  const GgufValue* deep = f->find("deep");
  ASSERT_EQ(deep->items.size(), 1u);
  ASSERT_EQ(deep->items[0].items.size(), 1u);
  const GgufValue& leaf = deep->items[0].items[0];
  EXPECT_EQ(leaf.elem_type, GgufType::STRING);
  ASSERT_EQ(leaf.items.size(), 2u);
  EXPECT_EQ(leaf.items[1].s, "yz");
  EXPECT_EQ(f->find("nested")->to_string(), "[[1, 2], [], [7]]");
}

TEST(GgufRoundTrip, EveryTensorTypeAndAlignment) {
  const std::vector<TensorType> types = {
      TensorType::F32,  TensorType::F16,  TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
      TensorType::Q5_1, TensorType::Q8_0, TensorType::Q8_1, TensorType::Q2_K, TensorType::Q3_K,
      TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K, TensorType::I8,
      TensorType::I16,  TensorType::I32,  TensorType::I64,  TensorType::F64,  TensorType::BF16};
  for (uint64_t alignment : {32u, 64u, 1u, 4096u}) {
    SCOPED_TRACE(alignment);
    GgufWriter w;
    w.set("general.architecture", GgufValue::of_str("test"));
    if (alignment != 32) w.set_alignment(alignment);
    std::mt19937 rng(static_cast<uint32_t>(alignment));
    std::vector<std::vector<uint8_t>> datas;
    for (TensorType t : types) {
      const TensorTypeInfo& ti = tensor_type_info(t);
      const std::vector<int64_t> ne = {ti.block_size * 2, 3, 1};
      std::vector<uint8_t> data(static_cast<size_t>(6 * ti.type_size));
      for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
      w.add_tensor(std::string("t.") + std::string(ti.name), ne, t, data.data(), data.size());
      datas.push_back(std::move(data));
    }
    auto f = GgufFile::from_bytes(w.to_bytes(), "tensors.gguf");
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->get_int_or("general.alignment", 32), static_cast<int64_t>(alignment));
    ASSERT_EQ(f->tensors().size(), types.size());
    const uint8_t* base = f->tensors()[0].data - f->tensors()[0].offset;
    for (size_t k = 0; k < types.size(); ++k) {
      const GgufTensor& t = f->tensors()[k];
      const TensorTypeInfo& ti = tensor_type_info(types[k]);
      EXPECT_EQ(t.type, types[k]);
      EXPECT_EQ(t.name, std::string("t.") + std::string(ti.name));
      EXPECT_EQ(t.ne, (std::vector<int64_t>{ti.block_size * 2, 3, 1}));
      EXPECT_EQ(t.n_elements(), ti.block_size * 6);
      EXPECT_EQ(t.rows(), 3);
      EXPECT_EQ(t.nbytes, datas[k].size());
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ(t.data - base, static_cast<ptrdiff_t>(t.offset));
      EXPECT_EQ((t.data - f->tensors()[0].data + f->tensors()[0].offset) % alignment, 0);
      EXPECT_EQ(std::memcmp(t.data, datas[k].data(), datas[k].size()), 0);
      EXPECT_EQ(f->tensor(t.name), &t);
    }
    EXPECT_EQ(f->tensor("missing"), nullptr);
  }
}

TEST(GgufRoundTrip, WriteAndOpenFromDisk) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_str("llama"));
  w.set("llama.block_count", GgufValue::of_u32(2));
  w.add_tensor_f32("a", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.add_tensor_f32("b", {3}, {-1, -2, -3});
  const std::string path =
      ::testing::TempDir() + "/lc_gguf_rt_" + std::to_string(getpid()) + ".gguf";
  w.write(path);
  {
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->path(), path);
    EXPECT_EQ(f->file_size(), w.to_bytes().size());
    EXPECT_EQ(f->get_str("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("llama.block_count"), 2);
    const GgufTensor* b = f->tensor("b");
    ASSERT_NE(b, nullptr);
    float v[3];
    std::memcpy(v, b->data, sizeof v);
    EXPECT_EQ(v[2], -3.0f);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensor("a")->data) % 32, 0u);
  }
  std::remove(path.c_str());
  const std::string msg = error_of([&] { GgufFile::open(path); });
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  const std::string wmsg = error_of([&] { w.write("/nonexistent-dir/x.gguf"); });
  EXPECT_NE(wmsg.find("/nonexistent-dir/x.gguf"), std::string::npos) << wmsg;
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  float data[64] = {};
  EXPECT_NE(error_of([&] { w.add_tensor("x", {4}, TensorType::F32, data, 12); }).find("needs 16"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { w.add_tensor("x", {33}, TensorType::Q4_0, data, 18); }).find("not a multiple"),
      std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("x", {0}, TensorType::F32, data, 0); }).find("dimension"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("x", {}, TensorType::F32, data, 4); }).find("dimensions"),
            std::string::npos);
  w.add_tensor("x", {2}, TensorType::F32, data, 8);
  EXPECT_NE(error_of([&] { w.add_tensor("x", {2}, TensorType::F32, data, 8); }).find("duplicate"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.set_alignment(24); }).find("power of two"), std::string::npos);
  // An array item whose type differs from the array's element type cannot be written.
  w.set("bad", array_of(GgufType::I32, {GgufValue::of_f32(1)}));
  EXPECT_NE(error_of([&] { w.to_bytes(); }).find("bad"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Typed getters

TEST(GgufGetters, TypesAbsentAndMismatch) {
  GgufWriter w;
  w.set("s", GgufValue::of_str("text"));
  w.set("n", GgufValue::of_u32(12));
  w.set("x", GgufValue::of_f32(0.5f));
  w.set("b", GgufValue::of_bool(false));
  w.set("big", GgufValue::of_u64(~0ull));
  w.set("ints", GgufValue::of_i32s({5, -6}));
  w.set("u32s", array_of(GgufType::U32, {GgufValue::of_u32(3000000000u)}));
  w.set("strs", GgufValue::of_strs({"q"}));
  auto f = GgufFile::from_bytes(w.to_bytes(), "getters.gguf");

  EXPECT_FALSE(f->get_str("missing").has_value());
  EXPECT_FALSE(f->get_int("missing").has_value());
  EXPECT_FALSE(f->get_float("missing").has_value());
  EXPECT_FALSE(f->get_bool("missing").has_value());
  EXPECT_FALSE(f->get_str_array("missing").has_value());
  EXPECT_FALSE(f->get_f32_array("missing").has_value());
  EXPECT_FALSE(f->get_i32_array("missing").has_value());
  EXPECT_EQ(f->get_str_or("missing", "d"), "d");
  EXPECT_EQ(f->get_int_or("missing", -4), -4);
  EXPECT_EQ(f->get_float_or("missing", 2.5), 2.5);
  EXPECT_EQ(f->get_bool_or("missing", true), true);

  EXPECT_EQ(f->get_str_or("s", "d"), "text");
  EXPECT_EQ(f->get_int_or("n", 0), 12);
  EXPECT_EQ(f->get_float("n"), 12.0);  // ints read as floats
  EXPECT_EQ(f->get_float_or("x", 0), 0.5);
  EXPECT_EQ(f->get_bool_or("b", true), false);
  EXPECT_EQ(f->get_f32_array("ints"), (std::vector<float>{5.0f, -6.0f}));
  EXPECT_EQ(f->find("x")->to_string(), "0.5");
  EXPECT_EQ(f->find("s")->to_string(), "\"text\"");
  EXPECT_EQ(f->find("b")->to_string(), "false");
  EXPECT_TRUE(f->find("n")->is_int());
  EXPECT_FALSE(f->find("n")->is_float());
  EXPECT_TRUE(f->find("x")->is_number());
  EXPECT_FALSE(f->find("s")->is_number());

  const std::string m1 = error_of([&] { f->get_int("s"); });
  EXPECT_NE(m1.find("'s'"), std::string::npos) << m1;
  EXPECT_NE(m1.find("string"), std::string::npos) << m1;
  EXPECT_NE(m1.find("integer"), std::string::npos) << m1;
  EXPECT_NE(m1.find("getters.gguf"), std::string::npos) << m1;
  EXPECT_NE(error_of([&] { f->get_str("n"); }).find("has type u32, expected string"),
            std::string::npos);
  EXPECT_NE(error_of([&] { f->get_int_or("x", 0); }).find("f32"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_bool("n"); }).find("expected bool"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_float("s"); }).find("expected a number"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_int("big"); }).find("too large"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_str_array("ints"); }).find("array of i32"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_i32_array("strs"); }).find("array of string"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_f32_array("s"); }).find("numeric array"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_i32_array("u32s"); }).find("does not fit"), std::string::npos);
  EXPECT_NE(error_of([&] { f->get_str_or("n", ""); }).find("'n'"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Real files

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

// Re-encoding every key and tensor of a real file must give the very same bytes.
void expect_identical_rewrite(const GgufFile& f) {
  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const GgufTensor& t : f.tensors()) w.add_tensor(t.name, t.ne, t.type, t.data, t.nbytes);
  EXPECT_TRUE(w.to_bytes() == read_all(f.path())) << f.path();
}

TEST(GgufRealFiles, Stories260K) {
  auto f = GgufFile::open(kModels + "/stories260K.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->file_size(), 1185376u);
  EXPECT_EQ(f->get_str("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 5);
  EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f->get_int("llama.context_length"), 2048);
  EXPECT_NEAR(*f->get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-12);
  EXPECT_FALSE(f->get_float("llama.rope.freq_base").has_value());
  EXPECT_EQ(f->get_str("tokenizer.ggml.model"), "llama");
  const auto tokens = f->get_str_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ(f->get_f32_array("tokenizer.ggml.scores")->size(), 512u);
  EXPECT_EQ(f->get_i32_array("tokenizer.ggml.token_type")->size(), 512u);
  EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f->get_int("tokenizer.ggml.seperator_token_id"), 4294967295);

  EXPECT_EQ(f->tensors().size(), 48u);  // 3 + 5 layers x 9
  const GgufTensor* emb = f->tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, TensorType::F32);
  EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(emb->rows(), 512);
  EXPECT_EQ(emb->nbytes, 64u * 512 * 4);
  const GgufTensor* ffn = f->tensor("blk.4.ffn_down.weight");
  ASSERT_NE(ffn, nullptr);
  EXPECT_EQ(ffn->ne, (std::vector<int64_t>{172, 64}));
  // Norm weights of a trained model are finite and not all zero.
  const GgufTensor* norm = f->tensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  std::vector<float> w(64);
  std::memcpy(w.data(), norm->data, 64 * 4);
  double sum = 0;
  for (float x : w) {
    EXPECT_TRUE(std::isfinite(x));
    sum += std::fabs(x);
  }
  EXPECT_GT(sum, 1.0);
  expect_identical_rewrite(*f);
}

TEST(GgufRealFiles, PasskeyTinyF32AndF16) {
  auto a = GgufFile::open(kModels + "/passkey-llama-tiny.gguf");
  auto b = GgufFile::open(kModels + "/passkey-llama-tiny-f16.gguf");
  for (const auto& f : {a, b}) {
    EXPECT_EQ(f->get_int("llama.block_count"), 4);
    EXPECT_EQ(f->get_int("llama.embedding_length"), 192);
    EXPECT_EQ(f->get_int("llama.context_length"), 512);
    EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 2);
    EXPECT_EQ(f->get_float("llama.rope.freq_base"), 10000.0);
    EXPECT_EQ(f->get_str_array("tokenizer.ggml.tokens")->size(), 512u);
    EXPECT_EQ(f->tensors().size(), 38u);  // 2 + 4 x 9, tied output
    EXPECT_EQ(f->tensor("output.weight"), nullptr);
  }
  EXPECT_EQ(a->tensor("blk.0.attn_q.weight")->type, TensorType::F32);
  EXPECT_EQ(b->tensor("blk.0.attn_q.weight")->type, TensorType::F16);
  EXPECT_EQ(b->tensor("blk.0.attn_q.weight")->nbytes, 192u * 192 * 2);
  EXPECT_EQ(b->tensor("blk.0.attn_norm.weight")->type, TensorType::F32);
  EXPECT_EQ(a->get_int("general.file_type"), 0);
  EXPECT_EQ(b->get_int("general.file_type"), 1);
  expect_identical_rewrite(*a);
  expect_identical_rewrite(*b);
}

TEST(GgufRealFiles, TokenizerOnlyVocabs) {
  struct Case {
    const char* file;
    const char* model;
    size_t n_tokens;
    size_t n_merges;
  };
  const Case cases[] = {{"ggml-vocab-llama-spm.gguf", "llama", 32000, 0},
                        {"ggml-vocab-phi-3.gguf", "llama", 32064, 0},
                        {"ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000},
                        {"ggml-vocab-deepseek-coder.gguf", "gpt2", 32256, 31757}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    auto f = GgufFile::open(kModels + "/vocab/" + c.file);
    EXPECT_TRUE(f->tensors().empty());
    EXPECT_EQ(f->get_str("tokenizer.ggml.model"), c.model);
    EXPECT_EQ(f->get_str_array("tokenizer.ggml.tokens")->size(), c.n_tokens);
    if (c.n_merges) {
      EXPECT_EQ(f->get_str_array("tokenizer.ggml.merges")->size(), c.n_merges);
    }
    expect_identical_rewrite(*f);
  }
  auto ds = GgufFile::open(kModels + "/vocab/ggml-vocab-deepseek-coder.gguf");
  EXPECT_EQ(ds->get_str("llama.rope.scaling.type"), "linear");
  EXPECT_EQ(ds->get_float("llama.rope.scaling.factor"), 4.0);
  EXPECT_EQ(ds->get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(ds->get_bool("tokenizer.ggml.add_bos_token"), true);
  auto phi = GgufFile::open(kModels + "/vocab/ggml-vocab-phi-3.gguf");
  EXPECT_EQ(phi->get_int("phi3.rope.scaling.original_context_length"), 4096);
  EXPECT_NE(phi->get_str("tokenizer.chat_template")->find("<|assistant|>"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Malformed files

// A small valid image: two metadata entries and two F32 tensors of 8 elements each.
std::vector<uint8_t> small_valid_image() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::of_str("llama"));
  w.set("list", GgufValue::of_i32s({1, 2, 3}));
  w.add_tensor_f32("a", {8}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.add_tensor_f32("b", {4, 2}, {8, 7, 6, 5, 4, 3, 2, 1});
  return w.to_bytes();
}

TEST(GgufMalformed, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = small_valid_image();
  ASSERT_NO_THROW(GgufFile::from_bytes(full, "full.gguf"));
  // The last tensor's data ends exactly at the end of the image (8 x 4 bytes after alignment).
  ASSERT_EQ(full.size() % 32, 0u);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    const std::string msg = parse_error(part, "cut.gguf");
    ASSERT_NE(msg, "no error") << "cut at " << cut;
    ASSERT_NE(msg.find("cut.gguf: byte offset "), std::string::npos) << msg;
  }
}

TEST(GgufMalformed, TruncatedTokenizerOnlyFile) {
  const std::vector<uint8_t> full = read_all(kModels + "/vocab/ggml-vocab-gpt-2.gguf");
  ASSERT_FALSE(full.empty());
  for (size_t cut :
       {size_t{0}, size_t{3}, size_t{20}, size_t{100}, full.size() / 2, full.size() - 1}) {
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    const std::string msg = parse_error(part);
    EXPECT_NE(msg.find("bad.gguf: byte offset"), std::string::npos) << cut << ": " << msg;
  }
}

struct BadCase {
  const char* name;
  std::vector<uint8_t> bytes;
  std::string expect;  // substring naming the problem
  size_t offset;       // byte offset the message must name
};

constexpr uint32_t kU32 = 4, kString = 8, kArray = 9, kF32 = 0, kQ4_0 = 2;

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> cases;
  auto add = [&](const char* name, const GgufBytes& b, const std::string& expect, size_t offset) {
    cases.push_back({name, b.bytes, expect, offset});
  };
  {
    GgufBytes b;
    b.raw("GGML").u32(3).u64(0).u64(0);
    add("bad magic", b, "bad magic \"GGML\"", 0);
  }
  {
    GgufBytes b;
    b.header(1, 0, 0);
    add("version 1", b, "unsupported GGUF version 1", 4);
  }
  {
    GgufBytes b;
    b.header(99, 0, 0);
    add("version 99", b, "unsupported GGUF version 99", 4);
  }
  {
    GgufBytes b;
    b.header(0x03000000, 0, 0);
    add("big-endian", b, "big-endian", 4);
  }
  {
    GgufBytes b;
    b.raw("GGUF").u32(3).u32(0);
    add("truncated header", b, "truncated file: tensor count", 8);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).u64(uint64_t{1} << 62).raw("key key key key");
    add("huge key length", b, "string length 4611686018427387904", 24);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("k", kString).u64(~uint64_t{0}).raw("abc");
    add("huge string value length", b, "is larger than the remaining 3 bytes", 37);
  }
  {
    GgufBytes b;
    b.header(3, 0, uint64_t{1} << 60).kv_u32("a", 1);
    add("huge n_kv", b, "metadata count 1152921504606846976 cannot fit", 16);
  }
  {
    GgufBytes b;
    b.header(3, 1000000, 0).kv_u32("a", 1);
    add("huge n_tensors", b, "tensor count 1000000 cannot fit", 8);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("arr", kArray).u32(kU32).u64(uint64_t{1} << 40).u32(1);
    add("huge array length", b, "array length 1099511627776 of u32 cannot fit", 43);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("arr", kArray).u32(kString).u64(5).str("a").str("b");
    add("array of strings too long", b, "array length 5 of string cannot fit", 43);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("weird", 13).u32(0);
    add("unknown value type", b, "unknown value type 13 for metadata key 'weird'", 37);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("arr", kArray).u32(77).u64(0);
    add("unknown array element type", b, "unknown array element type 77", 39);
  }
  {
    // Ten arrays nested in each other, the innermost empty.
    GgufBytes b;
    b.header(3, 0, 1).key("deep", kArray);
    for (int k = 0; k < 9; ++k) b.u32(kArray).u64(1);
    b.u32(kU32).u64(0);
    add("nesting too deep", b, "nested more than 8 levels", 40 + 8 * 12);
  }
  {
    GgufBytes b;
    b.header(3, 0, 2).kv_u32("dup", 1).kv_u32("dup", 2);
    add("duplicate key", b, "duplicate metadata key 'dup'", 43);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).kv_u32("", 1);
    add("empty key", b, "empty metadata key", 24);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("flag", 7).u8(2);
    add("bad bool", b, "invalid bool value 2", 40);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).kv_u32("general.alignment", 0);
    add("alignment 0", b, "general.alignment 0 is not a power of two", 49);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).kv_u32("general.alignment", 48);
    add("alignment 48", b, "general.alignment 48 is not a power of two", 49);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("general.alignment", 10).u64(32);
    add("alignment u64", b, "general.alignment has type u64, expected u32", 49);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).kv_str("general.alignment", "32");
    add("alignment string", b, "general.alignment has type string", 49);
  }
  // Tensor infos start at byte 24 when there is no metadata.
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {32}, 99, 0).pad_to(32).zeros(128);
    add("unknown tensor type", b, "tensor 'w' has unknown tensor type 99", 24 + 9 + 4 + 8);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {1, 1, 1, 1, 1}, kF32, 0).pad_to(32).zeros(32);
    add("5 dims", b, "tensor 'w' has 5 dimensions (must be 1 to 4)", 33);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {}, kF32, 0).pad_to(32).zeros(32);
    add("0 dims", b, "tensor 'w' has 0 dimensions", 33);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {4, 0}, kF32, 0).pad_to(32).zeros(32);
    add("zero dim", b, "tensor 'w' dimension 1 is 0 (must be positive)", 45);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {~uint64_t{0}}, kF32, 0).pad_to(32).zeros(32);
    add("negative dim", b, "dimension 0 is -1", 37);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0)
        .tensor_info("w", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0)
        .pad_to(32)
        .zeros(32);
    add("overflowing dims", b, "element count overflows int64", 45);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0)
        .tensor_info("w", {uint64_t{1} << 31, uint64_t{1} << 31}, kF32, 0)
        .pad_to(32)
        .zeros(32);
    add("overflowing byte size", b, "byte size overflows int64", 33);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {33}, kQ4_0, 0).pad_to(32).zeros(64);
    add("row not a multiple of the block", b,
        "row size 33 is not a multiple of the block size 32 of q4_0", 33);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {1000}, kF32, 0).pad_to(32).zeros(32);
    add("data past EOF", b, "tensor 'w' data [64, +4000) lies outside the file of 96 bytes", 24);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {4}, kF32, uint64_t{1} << 63).pad_to(32).zeros(32);
    add("offset far past EOF", b, "lies outside the file", 24);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {4}, kF32, 0);
    add("no data section", b, "truncated file: data section starts at 64", 57);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("w", {4}, kF32, 4).pad_to(32).zeros(64);
    add("misaligned offset", b, "data offset 4 is not a multiple of the alignment 32", 49);
  }
  {
    GgufBytes b;
    b.header(3, 2, 0)
        .tensor_info("a", {16}, kF32, 0)
        .tensor_info("b", {16}, kF32, 32)
        .pad_to(32)
        .zeros(128);
    add("overlapping tensors", b, "tensor 'b' data at offset 32 overlaps tensor 'a'", 57);
  }
  {
    GgufBytes b;
    b.header(3, 2, 0)
        .tensor_info("a", {8}, kF32, 0)
        .tensor_info("a", {8}, kF32, 32)
        .pad_to(32)
        .zeros(64);
    add("duplicate tensor name", b, "duplicate tensor name 'a'", 57);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).tensor_info("", {8}, kF32, 0).pad_to(32).zeros(32);
    add("empty tensor name", b, "empty tensor name", 24);
  }
  {
    GgufBytes b;
    b.header(3, 1, 0).str("w").u32(4).u64(4).u64(4).u64(4);
    add("truncated tensor info", b, "truncated file: tensor dimension needs 8 bytes but only 0",
        61);
  }
  {
    GgufBytes b;
    b.header(3, 0, 1).key("k", kU32).u16(7);
    add("truncated value", b, "truncated file: u32 value needs 4 bytes but only 2 remain", 37);
  }
  return cases;
}

TEST(GgufMalformed, TableOfBadFiles) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.name);
    const std::string msg = parse_error(c.bytes, "/data/bad-file.gguf");
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "message: " << msg;
    const std::string where = "/data/bad-file.gguf: byte offset " + std::to_string(c.offset) + ":";
    EXPECT_EQ(msg.rfind(where, 0), 0u) << "message: " << msg << "\nexpected prefix: " << where;
  }
}

TEST(GgufMalformed, ValidVariantsOfTheTableAreAccepted) {
  // Controls for the table: the same shapes with the problem removed parse fine.
  GgufBytes a;
  a.header(2, 1, 1).kv_u32("general.alignment", 64).tensor_info("w", {32, 2}, kQ4_0, 0).pad_to(64);
  a.zeros(36).pad_to(64);
  auto f = GgufFile::from_bytes(a.bytes, "v2.gguf");
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->tensor("w")->nbytes, 36u);

  GgufBytes b;  // tensors listed out of offset order, touching but not overlapping
  b.header(3, 2, 0).tensor_info("b", {8}, kF32, 32).tensor_info("a", {8}, kF32, 0).pad_to(32);
  b.zeros(64);
  EXPECT_NO_THROW(GgufFile::from_bytes(b.bytes, "order.gguf"));

  GgufBytes c;  // 8 nested arrays is the limit
  c.header(3, 0, 1).key("deep", kArray);
  for (int k = 0; k < 7; ++k) c.u32(kArray).u64(1);
  c.u32(kU32).u64(1).u32(5);
  auto g = GgufFile::from_bytes(c.bytes, "deep.gguf");
  const GgufValue* v = g->find("deep");
  for (int k = 0; k < 7; ++k) v = &v->items.at(0);
  EXPECT_EQ(v->items.at(0).u, 5u);
}

TEST(GgufMalformed, RandomCorruptionNeverCrashes) {
  // Flip bytes of a valid image: the reader either accepts it or throws lc::Error.
  const std::vector<uint8_t> full = small_valid_image();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    try {
      auto f = GgufFile::from_bytes(std::move(b), "fuzz.gguf");
      unsigned sum = 0;  // touch every byte (the sanitizer build checks the ranges)
      for (const GgufTensor& t : f->tensors()) {
        for (uint64_t k = 0; k < t.nbytes; ++k) sum += t.data[k];
      }
      EXPECT_GE(sum, 0u);
    } catch (const Error& e) {
      ++rejected;
      ASSERT_NE(std::string(e.what()).find("fuzz.gguf: byte offset"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace lc
