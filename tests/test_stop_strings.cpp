#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/stop_strings.h"

namespace {

using lc::StopStrings;

TEST(StopStrings, EmptyListPassesEverythingThrough) {
  StopStrings s({});
  EXPECT_EQ(s.push("Hello"), "Hello");
  EXPECT_EQ(s.push(", world"), ", world");
  EXPECT_EQ(s.finish(), "");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.matched(), "");
  StopStrings only_empty({"", ""});
  EXPECT_EQ(only_empty.push("abc"), "abc");
  EXPECT_FALSE(only_empty.stopped());
}

TEST(StopStrings, StopInsideOnePush) {
  StopStrings s({"</s>"});
  EXPECT_EQ(s.push("The end.</s>ignored"), "The end.");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "</s>");
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.finish(), "");
}

TEST(StopStrings, StopAtVeryStart) {
  StopStrings s({"User:"});
  EXPECT_EQ(s.push("User: hi"), "");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStrings, StopSpanningSeveralPushes) {
  StopStrings s({"\nUser:"});
  EXPECT_EQ(s.push("Sure, here it is."), "Sure, here it is.");
  EXPECT_EQ(s.push("\n"), "");
  EXPECT_EQ(s.held(), 1u);
  EXPECT_EQ(s.push("Us"), "");
  EXPECT_EQ(s.push("e"), "");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("r: next"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "\nUser:");
}

TEST(StopStrings, HeldPrefixThatIsNotAStopIsEmittedLater) {
  StopStrings s({"###"});
  EXPECT_EQ(s.push("a #"), "a ");
  EXPECT_EQ(s.push("#"), "");
  EXPECT_EQ(s.push("b"), "##b");  // "##b" is no prefix of "###": released
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("c##"), "c");
  EXPECT_EQ(s.finish(), "##");  // end of stream releases the held tail
  EXPECT_FALSE(s.stopped());
}

TEST(StopStrings, HoldsOnlyTheTailThatCanStillMatch) {
  StopStrings s({"abc"});
  EXPECT_EQ(s.push("xxab"), "xx");
  EXPECT_EQ(s.push("ab"), "ab");  // "abab": only the last "ab" can still become "abc"
  EXPECT_EQ(s.push("c"), "");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStrings, MultipleStopStrings) {
  {
    StopStrings s({"STOP", "END", "\n\n"});
    EXPECT_EQ(s.push("one E"), "one ");
    EXPECT_EQ(s.push("Nd two ST"), "ENd two ");
    EXPECT_EQ(s.push("OP three"), "");
    EXPECT_EQ(s.matched(), "STOP");
  }
  {
    // The stop that completes first wins, even if another one starts earlier.
    StopStrings s({"abcd", "bc"});
    EXPECT_EQ(s.push("xabcd"), "xa");
    EXPECT_EQ(s.matched(), "bc");
  }
  {
    // Same end: the longer one wins.
    StopStrings s({"c", "abc"});
    EXPECT_EQ(s.push("xxabcyy"), "xx");
    EXPECT_EQ(s.matched(), "abc");
  }
}

TEST(StopStrings, Utf8) {
  StopStrings s({"。", "東京"});
  const std::string text = "今日は東京へ行きます。";
  // Push byte by byte: nothing emitted may end inside a character before the stop.
  std::string out;
  for (char c : text) {
    out += s.push(std::string(1, c));
    if (s.stopped()) break;
  }
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "東京");
  EXPECT_EQ(out, "今日は");

  StopStrings t({"。"});
  EXPECT_EQ(t.push("Ça va"), "Ça va");
  std::string dot = "。";
  EXPECT_EQ(t.push(dot.substr(0, 2)), "");
  EXPECT_EQ(t.push(dot.substr(2) + "fin"), "");
  EXPECT_TRUE(t.stopped());

  StopStrings u({"é!"});
  EXPECT_EQ(u.push("caf\xC3\xA9"), "caf");  // "é" held: it may begin "é!"
  EXPECT_EQ(u.push("?"), "\xC3\xA9?");
}

// Reference: the result when the whole text is seen at once, by definition (earliest end, longest).
std::string reference(const std::string& text, const std::vector<std::string>& stops,
                      bool* stopped) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t best_start = std::string::npos;
    for (const auto& s : stops) {
      if (s.empty() || s.size() > end) continue;
      if (text.compare(end - s.size(), s.size(), s) == 0)
        best_start = std::min(best_start, end - s.size());
    }
    if (best_start != std::string::npos) {
      *stopped = true;
      return text.substr(0, best_start);
    }
  }
  *stopped = false;
  return text;
}

TEST(StopStrings, SplitIntoPushesDoesNotChangeTheResult) {
  std::mt19937 rng(7);
  auto rand_str = [&](size_t max_len) {
    std::string s;
    size_t n = rng() % (max_len + 1);
    for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + rng() % 3);
    return s;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> stops;
    int n_stops = static_cast<int>(rng() % 4);
    for (int i = 0; i < n_stops; ++i) stops.push_back(rand_str(4));
    std::string text = rand_str(30);
    bool want_stop = false;
    std::string want = reference(text, stops, &want_stop);

    StopStrings s(stops);
    std::string got;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t len = std::min(text.size() - pos, static_cast<size_t>(rng() % 6));
      got += s.push(std::string_view(text).substr(pos, len));
      pos += len;
    }
    got += s.finish();
    ASSERT_EQ(got, want) << "text '" << text << "' iteration " << iter;
    ASSERT_EQ(s.stopped(), want_stop) << "text '" << text << "'";
  }
}

}  // namespace
