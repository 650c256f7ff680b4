// tcp::printable_excerpt: what a peer sent, made safe for a failure detail.
#include <gtest/gtest.h>

#include <string>

#include "probes/tcp/tcp.h"

namespace nightshift::tcp {
namespace {

struct Case {
  const char* name;
  std::string bytes;
  std::size_t max;
  std::string want;
};

TEST(PrintableExcerptTest, Cases) {
  const Case cases[] = {
      {"empty", "", 64, ""},
      {"printable kept", "SSH-2.0-OpenSSH_9.2", 64, "SSH-2.0-OpenSSH_9.2"},
      {"CR LF named", "220 mail\r\n", 64, "220 mail\\r\\n"},
      {"NUL and DEL as hex", std::string("a\0b\x7f", 4), 64, "a\\x00b\\x7f"},
      {"backslash escaped, so escapes stay unambiguous", "a\\b", 64, "a\\x5cb"},
      {"high bytes as lowercase hex", "\xff\xc3\xa9", 64, "\\xff\\xc3\\xa9"},
      {"tab as hex", "a\tb", 64, "a\\x09b"},
      {"exactly max: no ellipsis", std::string(10, 'x'), 10, std::string(10, 'x')},
      {"longer than max: cut, with ellipsis", std::string(100, 'x'), 10, std::string(10, 'x') + "..."},
      {"an escape is never split or pushed past max", "abcdefgh\x01z", 10, "abcdefgh..."},
      {"an escape that fits exactly", "abcdef\x01z", 10, "abcdef\\x01..."},
      {"max 0", "x", 0, "..."},
      {"max 0, nothing to cut", "", 0, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(printable_excerpt(c.bytes, c.max), c.want);
  }
}

TEST(PrintableExcerptTest, DefaultLimitIs64Characters) {
  const std::string out = printable_excerpt(std::string(1000, '\x01'));
  EXPECT_EQ(out.size(), 64u + 3u) << out;  // 16 escapes of 4 characters, then "..."
  EXPECT_EQ(out.substr(out.size() - 3), "...");
}

TEST(PrintableExcerptTest, OnlyPrintableAsciiComesOut) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string out = printable_excerpt(all, 10'000);
  for (char c : out) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  EXPECT_EQ(out.find("..."), std::string::npos);
}

}  // namespace
}  // namespace nightshift::tcp
