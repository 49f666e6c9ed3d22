// Tokenizer files of a Hugging Face folder -> tokenizer.* metadata in llama.cpp's names, read by
// the project's tokenizers (model/tokenizer):
//  - tokenizer.json with a byte-level BPE model (GPT-2, SmolLM2, Llama-3, Qwen2): model "gpt2",
//    vocabulary in id order, merges, the pre-tokenizer family recognised from the pre_tokenizer
//    section (ByteLevel alone: gpt-2; Digits + ByteLevel: smollm; a Split regex: llama3 or qwen2),
//    else the section's own regexes (tokenizer.hf.pre_regexes);
//  - tokenizer.json with a byte-fallback BPE model (Llama-2, Mistral, Phi-3): model "llama" (the
//    SentencePiece-style tokenizer), scores from the merge ranks, <0xNN> byte tokens, the "▁"
//    prefix from the normalizer (Prepend) or a Metaspace pre-tokenizer;
//  - tokenizer.model (SentencePiece), read with libsentencepiece (hf_spm.cpp).
// Added tokens become control tokens when special, user-defined otherwise. tokenizer_config.json
// gives bos/eos/unk/pad, add_bos_token / add_eos_token and chat_template; generation_config.json
// and config.json give eos ids it leaves out.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/hf/hf_folder.h"
#include "model/tokenizer/pretokenize.h"

namespace lc {

using json = nlohmann::json;

namespace {

namespace fs = std::filesystem;
using Kv = std::vector<std::pair<std::string, GgufValue>>;

std::string shown(const json& v) {
  std::string d = v.dump();
  return d.size() > 80 ? d.substr(0, 77) + "..." : d;
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path);
  std::ostringstream os;
  os << in.rdbuf();
  try {
    json j = json::parse(os.str());
    if (!j.is_object()) fail(path, ": expected a JSON object");
    return j;
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// "type" of a pre-tokenizer / normalizer / decoder object, "" for null.
std::string type_of(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The items of a Sequence, or the object itself.
std::vector<json> flatten(const json& j, const char* list_key) {
  std::vector<json> out;
  if (j.is_null()) return out;
  if (type_of(j) == "Sequence" && j.contains(list_key) && j[list_key].is_array()) {
    for (const json& e : j[list_key])
      for (json& x : flatten(e, list_key)) out.push_back(std::move(x));
  } else {
    out.push_back(j);
  }
  return out;
}

// The pre-tokenizer of a byte-level BPE tokenizer.json: a llama.cpp family name when it is one
// of the known ones (so that a converted GGUF names it), else its regexes in order ("Split"
// patterns, "Digits", "ByteLevel"'s GPT-2 regex), applied the same way.
struct BytePre {
  std::string name;
  std::vector<std::string> regexes;  // empty for a known family
};

BytePre byte_level_pre(const json& tj, const std::string& path) {
  const json pre = tj.value("pre_tokenizer", json());
  const std::vector<json> items = flatten(pre, "pretokenizers");
  std::vector<std::string> types, regexes;
  std::string split_regex;
  bool digits_individual = false, byte_level = false;
  for (const json& e : items) {
    const std::string t = type_of(e);
    types.push_back(t);
    if (t == "Split") {
      const json p = e.value("pattern", json());
      if (p.is_object() && p.contains("Regex") && p["Regex"].is_string())
        split_regex = p["Regex"].get<std::string>();
      else if (p.is_object() && p.contains("String") && p["String"].is_string())
        split_regex = "\\Q" + p["String"].get<std::string>() + "\\E";
      else
        fail(path, ": pre_tokenizer Split ", shown(e), " has no Regex or String pattern");
      if (e.value("behavior", "Isolated") != "Isolated" || e.value("invert", false))
        fail(path, ": pre_tokenizer Split ", shown(e),
             " is not supported (only behavior Isolated, not inverted)");
      regexes.push_back(split_regex);
    } else if (t == "Digits") {
      digits_individual = e.value("individual_digits", false);
      regexes.push_back(digits_individual ? "\\p{N}" : "\\p{N}+");
    } else if (t == "ByteLevel") {
      byte_level = true;
      if (e.value("add_prefix_space", false))
        fail(path, ": pre_tokenizer ByteLevel with add_prefix_space is not supported");
      if (e.value("use_regex", true))
        for (const std::string& r : pretokenizer_info("gpt-2").regexes) regexes.push_back(r);
    } else {
      fail(path, ": pre_tokenizer ", shown(pre), " has a \"", t,
           "\" step; byte-level tokenizers are read with Split, Digits and ByteLevel steps");
    }
  }
  if (!byte_level)
    fail(path, ": pre_tokenizer ", shown(pre),
         " has no ByteLevel step, but the BPE model has no byte_fallback either");
  const auto is = [&](std::initializer_list<const char*> want) {
    if (want.size() != types.size()) return false;
    size_t i = 0;
    for (const char* w : want)
      if (types[i++] != w) return false;
    return true;
  };
  if (is({"ByteLevel"}) && regexes.size() == 1) return {"gpt-2", {}};
  if (is({"Digits", "ByteLevel"}) && digits_individual && regexes.size() == 2)
    return {"smollm", {}};
  if (is({"Split", "ByteLevel"}) && regexes.size() == 1) {
    for (const char* fam : {"llama3", "qwen2"})
      if (pretokenizer_info(fam).regexes == std::vector<std::string>{split_regex}) return {fam, {}};
    // The same regexes as tokenizer.json writes them, with (?i:...) for the contractions.
    const bool llama3_like = split_regex.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") != std::string::npos;
    if (llama3_like && split_regex.find("\\p{N}{1,3}") != std::string::npos) return {"llama3", {}};
    if (llama3_like && split_regex.find("|\\p{N}|") != std::string::npos) return {"qwen2", {}};
  }
  return {"tokenizer.json", regexes};
}

// A token given as a string or as {"content": ...}; "" when absent.
std::string token_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return "";
}

// The special token a TemplateProcessing post-processor puts before a single sequence ("" when
// there is none): Hugging Face adds it when encoding, as add_bos does here.
std::string template_first_special(const json& post) {
  for (const json& p : flatten(post, "processors")) {
    if (type_of(p) != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array() ||
        p["single"].empty())
      continue;
    const json& first = p["single"][0];
    if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object())
      return first["SpecialToken"].value("id", "");
  }
  return "";
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  std::map<std::string, int64_t> ids;
};

void put_token(Vocab& v, int64_t id, const std::string& text, int32_t type,
               const std::string& path) {
  if (id < 0 || id >= static_cast<int64_t>(v.tokens.size()))
    fail(path, ": token \"", text.substr(0, 40), "\" has id ", id, ", outside the ",
         v.tokens.size(), " rows of the embedding");
  v.tokens[static_cast<size_t>(id)] = text;
  v.types[static_cast<size_t>(id)] = type;
  v.ids[text] = id;
}

std::string json_tokenizer(const std::string& path, int64_t n_vocab, Kv& kv,
                           std::string& template_bos) {
  const json tj = read_json(path);
  if (!tj.contains("model") || !tj["model"].is_object()) fail(path, ": no \"model\" object");
  const json& m = tj["model"];
  const std::string mtype = type_of(m).empty() && m.contains("merges") ? "BPE" : type_of(m);
  if (mtype != "BPE")
    fail(path, ": tokenizer model \"", mtype, "\" is not supported (BPE only; give a ",
         "tokenizer.model for SentencePiece unigram models)");
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail(path, ": model.vocab is not an object");
  const bool byte_fallback = m.value("byte_fallback", false);

  Vocab v;
  v.tokens.resize(static_cast<size_t>(n_vocab));
  v.types.assign(static_cast<size_t>(n_vocab), 5);  // unused (padding) unless named below
  v.scores.assign(static_cast<size_t>(n_vocab), 0.0f);
  for (size_t i = 0; i < v.tokens.size(); ++i) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer())
      fail(path, ": model.vocab entry \"", it.key().substr(0, 40), "\" has no integer id");
    int32_t type = 1;
    const std::string& t = it.key();
    if (byte_fallback && t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') type = 6;
    put_token(v, it.value().get<int64_t>(), t, type, path);
  }
  const std::string unk = m.contains("unk_token") ? token_text(m["unk_token"]) : "";
  if (!unk.empty() && v.ids.count(unk)) v.types[static_cast<size_t>(v.ids[unk])] = 2;
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const json& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        fail(path, ": added_tokens entry ", shown(a), " lacks an integer id or a content string");
      const std::string text = a["content"].get<std::string>();
      const bool special = a.value("special", false);
      int32_t type = special ? 3 : 4;
      if (text == unk) type = 2;
      put_token(v, a["id"].get<int64_t>(), text, type, path);
    }
  }

  std::vector<std::string> merges;
  if (m.contains("merges") && m["merges"].is_array()) {
    for (const json& e : m["merges"]) {
      if (e.is_string()) {
        merges.push_back(e.get<std::string>());
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      } else {
        fail(path, ": model.merges entry ", shown(e), " is not \"a b\" or [\"a\", \"b\"]");
      }
    }
  }

  const auto set = [&](std::string k, GgufValue val) {
    kv.emplace_back(std::move(k), std::move(val));
  };
  if (!byte_fallback) {
    set("tokenizer.ggml.model", GgufValue::of_str("gpt2"));
    const BytePre bp = byte_level_pre(tj, path);
    set("tokenizer.ggml.pre", GgufValue::of_str(bp.name));
    if (!bp.regexes.empty()) {
      // No llama.cpp family: the regexes themselves (keys of this project).
      set("tokenizer.hf.pre_regexes", GgufValue::of_strs(bp.regexes));
      set("tokenizer.hf.ignore_merges", GgufValue::of_bool(m.value("ignore_merges", false)));
    }
    const json norm = tj.value("normalizer", json());
    for (const json& n : flatten(norm, "normalizers"))
      if (type_of(n) != "NFC")
        fail(path, ": normalizer ", shown(norm), " is not supported with a byte-level model");
    set("tokenizer.ggml.merges", GgufValue::of_strs(merges));
  } else {
    // SentencePiece-style: a merge's rank becomes the score of the token it makes.
    for (size_t r = merges.size(); r-- > 0;) {
      const std::string& s = merges[r];
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) continue;
      auto it = v.ids.find(s.substr(0, sp) + s.substr(sp + 1));
      if (it != v.ids.end()) v.scores[static_cast<size_t>(it->second)] = -static_cast<float>(r);
    }
    bool prefix = false;
    for (const json& n : flatten(tj.value("normalizer", json()), "normalizers"))
      if (type_of(n) == "Prepend" && n.value("prepend", "") == "\xE2\x96\x81") prefix = true;
    for (const json& p : flatten(tj.value("pre_tokenizer", json()), "pretokenizers"))
      if (type_of(p) == "Metaspace")
        prefix = p.value("prepend_scheme",
                         p.value("add_prefix_space", true) ? "always" : "never") != "never";
    set("tokenizer.ggml.model", GgufValue::of_str("llama"));
    set("tokenizer.ggml.pre", GgufValue::of_str("default"));
    set("tokenizer.ggml.scores", GgufValue::of_f32s(v.scores));
    set("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(prefix));
    if (!unk.empty() && v.ids.count(unk))
      set("tokenizer.ggml.unknown_token_id", GgufValue::of_u32(static_cast<uint32_t>(v.ids[unk])));
  }
  set("tokenizer.ggml.tokens", GgufValue::of_strs(v.tokens));
  set("tokenizer.ggml.token_type", GgufValue::of_i32s(v.types));
  template_bos = template_first_special(tj.value("post_processor", json()));
  return path;
}

std::string tokenizer_metadata(const std::string& dir, const HfConfig& cfg, int64_t n_vocab,
                               Kv& kv) {
  const fs::path d(dir);
  json tc = json::object();
  if (file_exists(d / "tokenizer_config.json"))
    tc = read_json((d / "tokenizer_config.json").string());
  const std::string bos_text = tc.contains("bos_token") ? token_text(tc["bos_token"]) : "";
  std::string template_bos;  // what tokenizer.json's post-processor puts first

  const size_t first = kv.size();
  std::string used;
  if (file_exists(d / "tokenizer.json")) {
    used = json_tokenizer((d / "tokenizer.json").string(), n_vocab, kv, template_bos);
  } else if (file_exists(d / "tokenizer.model")) {
    used = (d / "tokenizer.model").string();
    spm_tokenizer_metadata(used, n_vocab, kv);
  } else {
    fail(dir, ": no tokenizer.json or tokenizer.model");
  }

  // The token list just written, to turn tokenizer_config.json's texts into ids.
  std::vector<std::string> tok_list;
  for (size_t i = first; i < kv.size(); ++i)
    if (kv[i].first == "tokenizer.ggml.tokens")
      for (const GgufValue& e : kv[i].second.items) tok_list.push_back(e.s);
  LC_CHECK(tok_list.size() == static_cast<size_t>(n_vocab));
  const std::vector<std::string>* toks = &tok_list;
  const auto id_of = [&](const std::string& text) -> int64_t {
    for (size_t i = toks->size(); i-- > 0;)
      if ((*toks)[i] == text) return static_cast<int64_t>(i);
    return -1;
  };
  const auto set = [&](const std::string& k, GgufValue val) {
    for (auto& [key, old] : kv)
      if (key == k) {
        old = std::move(val);
        return;
      }
    kv.emplace_back(k, std::move(val));
  };
  const auto set_id = [&](const char* key, int64_t id) {
    if (id >= 0 && id < n_vocab) set(key, GgufValue::of_u32(static_cast<uint32_t>(id)));
  };

  // tokenizer_config.json's added_tokens_decoder ({"id": {"content", "special"}}) names the added
  // tokens a tokenizer.model does not mark (InternLM2's <|im_start|> and the like).
  if (!used.ends_with("tokenizer.json") && tc.contains("added_tokens_decoder") &&
      tc["added_tokens_decoder"].is_object()) {
    std::vector<int32_t> types;
    for (size_t i = first; i < kv.size(); ++i)
      if (kv[i].first == "tokenizer.ggml.token_type")
        for (const GgufValue& e : kv[i].second.items) types.push_back(static_cast<int32_t>(e.i));
    LC_CHECK(types.size() == tok_list.size());
    const json& atd = tc["added_tokens_decoder"];
    for (auto it = atd.begin(); it != atd.end(); ++it) {
      const std::string& key = it.key();
      const json& e = it.value();
      if (key.empty() || key.size() > 9 ||
          key.find_first_not_of("0123456789") != std::string::npos || !e.is_object() ||
          !e.contains("content") || !e["content"].is_string())
        fail((d / "tokenizer_config.json").string(), ": added_tokens_decoder entry \"",
             key.substr(0, 20), "\" is not {\"id\": {\"content\": ...}}");
      const int64_t id = std::stoll(key);
      if (id >= n_vocab)
        fail((d / "tokenizer_config.json").string(), ": added_tokens_decoder id ", id,
             " is outside the ", n_vocab, " rows of the embedding");
      const auto k = static_cast<size_t>(id);
      tok_list[k] = e["content"].get<std::string>();
      types[k] = e.value("special", false) ? 3 : 4;
    }
    set("tokenizer.ggml.tokens", GgufValue::of_strs(tok_list));
    set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
  }

  // Special ids: tokenizer_config.json texts, else config.json's ids.
  int64_t bos = bos_text.empty() ? -1 : id_of(bos_text);
  if (bos < 0 && !template_bos.empty()) bos = id_of(template_bos);
  if (bos < 0) bos = cfg.bos_id;
  set_id("tokenizer.ggml.bos_token_id", bos);
  // tokenizer.json: BOS is added when its post-processor puts it first (tokenizer_config.json's
  // add_bos_token, below, still wins).
  if (used.ends_with("tokenizer.json"))
    set("tokenizer.ggml.add_bos_token",
        GgufValue::of_bool(!template_bos.empty() && bos >= 0 && id_of(template_bos) == bos));
  const std::string eos_text = tc.contains("eos_token") ? token_text(tc["eos_token"]) : "";
  int64_t eos = eos_text.empty() ? -1 : id_of(eos_text);
  if (eos < 0) eos = cfg.eos_id;
  // generation_config.json's eos ids: the first is the end of sequence when nothing else said so;
  // others become end-of-turn / end-of-message ids.
  std::vector<int64_t> gen_eos;
  if (file_exists(d / "generation_config.json")) {
    const std::string gp = (d / "generation_config.json").string();
    const json g = read_json(gp);
    if (g.contains("eos_token_id")) {
      const json& e = g["eos_token_id"];
      for (const json& x : e.is_array() ? e : json::array({e})) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= n_vocab)
          fail(gp, ": eos_token_id ", shown(x), " is not a token id of the ", n_vocab,
               "-token vocabulary");
        gen_eos.push_back(x.get<int64_t>());
      }
    }
  }
  if (eos < 0 && !gen_eos.empty()) eos = gen_eos.front();
  set_id("tokenizer.ggml.eos_token_id", eos);
  bool have_eot = false;
  for (int64_t id : gen_eos) {
    if (id == eos) continue;
    if ((*toks)[static_cast<size_t>(id)] == "<|eom_id|>") {
      set_id("tokenizer.ggml.eom_token_id", id);
    } else if (!have_eot) {
      set_id("tokenizer.ggml.eot_token_id", id);
      have_eot = true;
    }
  }
  if (tc.contains("unk_token"))
    set_id("tokenizer.ggml.unknown_token_id", id_of(token_text(tc["unk_token"])));
  if (tc.contains("pad_token"))
    set_id("tokenizer.ggml.padding_token_id", id_of(token_text(tc["pad_token"])));
  for (const char* k : {"add_bos_token", "add_eos_token"}) {
    if (!tc.contains(k) || tc[k].is_null()) continue;
    if (!tc[k].is_boolean())
      fail((d / "tokenizer_config.json").string(), ": \"", k, "\" = ", shown(tc[k]),
           " is not true or false");
    set(std::string("tokenizer.ggml.") + k, GgufValue::of_bool(tc[k].get<bool>()));
  }
  if (tc.contains("chat_template")) {
    const json& ct = tc["chat_template"];
    std::string t;
    if (ct.is_string()) t = ct.get<std::string>();
    if (ct.is_array())  // [{"name": "default", "template": ...}, ...]
      for (const json& e : ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
            e["template"].is_string())
          t = e["template"].get<std::string>();
    if (!t.empty()) set("tokenizer.chat_template", GgufValue::of_str(t));
  }
  return used;
}

}  // namespace

std::string hf_tokenizer_metadata(const std::string& dir, const HfConfig& cfg, int64_t n_vocab,
                                  Kv& kv) {
  try {
    return tokenizer_metadata(dir, cfg, n_vocab, kv);
  } catch (const json::exception& e) {
    // A value of an unexpected JSON type somewhere in the tokenizer files.
    fail(dir, ": a tokenizer file holds a value of the wrong type (", e.what(), ")");
  }
}

}  // namespace lc
