// Chat templates: family detection from the real Jinja templates of each family, and renderings
// compared with what those templates produce (expected strings rendered with Jinja2 from the
// template texts below).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "model/tokenizer/chat_template.h"
#include "model/tokenizer/tokenizer.h"
#include "support/paths.h"

namespace {

using lc::ChatFormat;
using lc::ChatMessage;

// Template texts as they appear in the models' tokenizer_config.json (JSON escapes undone).
const char* const kChatML =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
const char* const kQwen2 =
    R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
const char* const kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";
const char* const kInternLM2 =
    R"({{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
const char* const kLlama2 =
    R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})";
const char* const kLlama3 =
    R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";
// Mistral-7B-Instruct-v0.1 / v0.2 as released.
const char* const kMistral =
    R"({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})";
// Mistral's later official template (with a system message).
const char* const kMistralV1System =
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    "
    "{%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in "
    "loop_messages %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and "
    "system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + "
    "message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == "
    "'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- endif %}\n{%- "
    "endfor %}\n";
// microsoft/Phi-3-mini-4k-instruct.
const char* const kPhi3 =
    R"({% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %})";
const char* const kGemma =
    R"({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})";

const std::vector<ChatMessage> kFull = {{"system", "You are a helpful assistant."},
                                        {"user", "Hello"},
                                        {"assistant", "Hi there"},
                                        {"user", "Who are you"}};
const std::vector<ChatMessage> kNoSys(kFull.begin() + 1, kFull.end());
const std::vector<ChatMessage> kOne = {{"user", "  Hello  "}};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const lc::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ChatTemplate, DetectsFamiliesFromRealTemplates) {
  EXPECT_EQ(lc::detect_chat_format(kChatML), ChatFormat::ChatML);
  EXPECT_EQ(lc::detect_chat_format(kQwen2), ChatFormat::ChatML);
  EXPECT_EQ(lc::detect_chat_format(kSmolLM2), ChatFormat::ChatML);
  EXPECT_EQ(lc::detect_chat_format(kInternLM2), ChatFormat::InternLM2);
  EXPECT_EQ(lc::detect_chat_format(kLlama2), ChatFormat::Llama2);
  EXPECT_EQ(lc::detect_chat_format(kLlama3), ChatFormat::Llama3);
  EXPECT_EQ(lc::detect_chat_format(kMistral), ChatFormat::Mistral);
  EXPECT_EQ(lc::detect_chat_format(kMistralV1System), ChatFormat::Mistral);
  EXPECT_EQ(lc::detect_chat_format(kPhi3), ChatFormat::Phi3);
}

TEST(ChatTemplate, DetectsPhi3FromTheVocabFile) {
  auto f = lc::GgufFile::open(lc::test::shared_path("models/vocab/ggml-vocab-phi-3.gguf"));
  auto tok = lc::Tokenizer::from_gguf(*f);
  EXPECT_EQ(lc::detect_chat_format(tok->chat_template()), ChatFormat::Phi3);
  // That file's (original Phi-3) template writes BOS first and always opens the assistant turn
  // after a user message: "<s><|user|>\nHi<|end|>\n<|assistant|>\n".
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Phi3, {{"user", "Hi"}}, true, "<s>"),
            "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, UnknownTemplateIsAnError) {
  const std::string m = error_of([] { lc::detect_chat_format(kGemma); });
  EXPECT_EQ(m.rfind("unknown chat template: \"{{ bos_token }}{% for message in messages %}", 0), 0u)
      << m;
  EXPECT_NE(m.find("..."), std::string::npos) << m;
  EXPECT_EQ(m.find("<start_of_turn>' + role"), std::string::npos) << "shows only the start: " << m;
  EXPECT_NE(error_of([] { lc::detect_chat_format(""); }).find("unknown chat template"),
            std::string::npos);
}

TEST(ChatTemplate, Names) {
  for (ChatFormat f : {ChatFormat::ChatML, ChatFormat::Llama2, ChatFormat::Llama3,
                       ChatFormat::Mistral, ChatFormat::Phi3, ChatFormat::InternLM2})
    EXPECT_EQ(lc::chat_format_from_name(lc::chat_format_name(f)), f);
  EXPECT_EQ(lc::chat_format_name(ChatFormat::InternLM2), "internlm2");
  const std::string m = error_of([] { lc::chat_format_from_name("vicuna"); });
  EXPECT_NE(m.find("unknown chat template name 'vicuna'"), std::string::npos) << m;
}

TEST(ChatTemplate, ChatML) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::ChatML, kFull, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|"
            "im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are "
            "you<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::ChatML, kOne, false),
            "<|im_start|>user\n  Hello  <|im_end|>\n");
  // ChatML writes no BOS.
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::ChatML, kOne, true, "<s>"),
            "<|im_start|>user\n  Hello  <|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, InternLM2) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::InternLM2, kNoSys, true, "<s>"),
            "<s><|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi "
            "there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::InternLM2, kOne, false),
            "<|im_start|>user\n  Hello  <|im_end|>\n");
}

TEST(ChatTemplate, Llama2) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama2, kFull, true, "<s>"),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST] Hi there "
            "</s><s>[INST] Who are you [/INST]");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama2, kOne, false, "<s>"),
            "<s>[INST] Hello [/INST]");
  // With the tokenizer adding the first BOS, later turns still start with "<s>".
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama2, kNoSys, true),
            "[INST] Hello [/INST] Hi there </s><s>[INST] Who are you [/INST]");
  const std::string m = error_of([] {
    lc::apply_chat_template(ChatFormat::Llama2, {{"user", "a"}, {"user", "b"}}, true);
  });
  EXPECT_NE(m.find("alternate user/assistant"), std::string::npos) << m;
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama3, kFull, true, "<|begin_of_text|>"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
            "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|"
            "start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>"
            "user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_"
            "header_id|>\n\n");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama3, kOne, false, "<|begin_of_text|>"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Llama3, kOne, true),
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>"
            "assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Mistral) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Mistral, kNoSys, true, "<s>"),
            "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Mistral, kOne, false, "<s>"),
            "<s>[INST]   Hello   [/INST]");
  // A system message goes before the first user message (the released template rejects it).
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Mistral, kFull, true),
            "[INST] You are a helpful assistant.\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]");
  EXPECT_NE(error_of([] {
              lc::apply_chat_template(ChatFormat::Mistral, {{"assistant", "a"}}, true);
            }).find("alternate"),
            std::string::npos);
}

TEST(ChatTemplate, Phi3) {
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Phi3, kFull, true),
            "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello<|end|>\n<|"
            "assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n");
  EXPECT_EQ(lc::apply_chat_template(ChatFormat::Phi3, kNoSys, false),
            "<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are "
            "you<|end|>\n<|endoftext|>");
}

}  // namespace
