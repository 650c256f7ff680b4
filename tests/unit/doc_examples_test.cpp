// Docs that check themselves: every ```toml block in README.md and docs/*.md
// goes through `nightshift check-config`, as a reader copying it would run it,
// so no example in the docs can fail again (issue 21: the README's own example
// gave 3 errors).
//
// A block whose first line is `# fragment` (or that follows an
// `<!-- fragment -->` line) shows only part of a config: it is placed after a
// minimal one, a target "example" (192.0.2.1, one ICMP probe), so it must start
// with a table header and may refer to that target. Secrets the examples name
// are provided the way an operator would: every `*_file` path is mapped into a
// temporary directory that holds a file of that name, every `*_env` variable is
// set, and every `*_credential` name is a file in $CREDENTIALS_DIRECTORY;
// `tls_cert_file`/`tls_key_file` get a real certificate and key (openssl).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

struct Example {
  std::string file;  // relative to the source tree, e.g. "docs/rules.md"
  int line = 0;      // of the first line inside the fence
  std::string toml;
  bool fragment = false;
  std::string name() const {
    std::string n = file + "_line" + std::to_string(line);
    for (char& c : n) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return n;
  }
};

// gtest prints a parameter in the test's name: where the example is.
void PrintTo(const Example& ex, std::ostream* os) { *os << ex.file << ":" << ex.line; }

std::vector<Example> examples_in(const std::string& root, const std::string& rel) {
  std::ifstream in(root + "/" + rel);
  std::vector<Example> out;
  std::string line;
  std::string previous;  // the last non-empty line before a fence
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("```toml", 0) == 0) {
      Example ex{rel, number + 1, "", previous.find("<!-- fragment -->") != std::string::npos};
      bool first = true;
      while (std::getline(in, line)) {
        ++number;
        if (line.rfind("```", 0) == 0) break;
        if (first && line.rfind("# fragment", 0) == 0) ex.fragment = true;
        first = false;
        ex.toml += line + "\n";
      }
      out.push_back(std::move(ex));
      previous.clear();
    } else if (!line.empty()) {
      previous = line;
    }
  }
  return out;
}

std::vector<Example> all_examples() {
  const std::string root = NIGHTSHIFT_TEST_SOURCE_DIR;
  std::vector<std::string> files = {"README.md"};
  std::vector<std::string> docs;
  for (const auto& e : std::filesystem::directory_iterator(root + "/docs")) {
    if (e.path().extension() == ".md") docs.push_back("docs/" + e.path().filename().string());
  }
  std::sort(docs.begin(), docs.end());
  files.insert(files.end(), docs.begin(), docs.end());
  std::vector<Example> out;
  for (const auto& f : files) {
    auto ex = examples_in(root, f);
    out.insert(out.end(), ex.begin(), ex.end());
  }
  return out;
}

const char kMinimalConfig[] = R"(# minimal config around a fragment
[[target]]
name = "example"
address = "192.0.2.1"
  [[target.probe]]
  kind = "icmp"

)";

std::string agent_binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

class DocExample : public ::testing::TestWithParam<Example> {};

TEST_P(DocExample, PassesCheckConfig) {
  const Example& ex = GetParam();
  ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is not set (run through ctest)";
  test::TempDir dir("nightshift-doc-");
  const std::string credentials = dir.file("credentials");
  std::filesystem::create_directory(credentials);
  std::string text = ex.toml;
  std::vector<std::string> env = {"CREDENTIALS_DIRECTORY=" + credentials};

  // A URL where the key is a URL (a Slack webhook is itself a secret), else a
  // token long enough for every secret's minimum length.
  auto secret_for = [](const std::string& key) {
    return key.rfind("url", 0) == 0 ? std::string("https://hooks.example.net/services/T0/B0/doc-example")
                                    : std::string("doc-example-secret-0123456789");
  };
  const std::regex secret_key(R"re((\w+)_(file|env|credential)\s*=\s*"([^"]+)")re");
  std::string rewritten;
  std::string::const_iterator from = text.begin();
  for (std::sregex_iterator it(text.begin(), text.end(), secret_key), end; it != end; ++it) {
    const std::smatch& m = *it;
    const std::string key = m[1], form = m[2], value = m[3];
    rewritten.append(from, m[0].first);
    from = m[0].second;
    if (form == "file" && (key == "tls_cert" || key == "tls_key")) {
      // An HTTPS pair is loaded by check-config: a real one, made once.
      const std::string pem = dir.file("doc-tls.pem"), pkey = dir.file("doc-tls.key");
      if (!std::filesystem::exists(pem)) {
        const test::RunResult made = test::run_process(
            {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", pkey, "-out", pem, "-days", "2", "-subj", "/CN=localhost"},
            std::chrono::seconds(20));
        ASSERT_TRUE(made.status && made.status->exited && made.status->code == 0) << "openssl: " << made.err;
      }
      const std::string mapped = dir.file(std::filesystem::path(value).filename().string());
      std::filesystem::copy_file(key == "tls_cert" ? pem : pkey, mapped,
                                 std::filesystem::copy_options::overwrite_existing);
      rewritten += key + "_file = \"" + mapped + "\"";
    } else if (form == "file") {
      const std::string mapped = dir.file(std::filesystem::path(value).filename().string());
      test::write_file(mapped, secret_for(key) + "\n");
      rewritten += key + "_file = \"" + mapped + "\"";
    } else if (form == "env") {
      env.push_back(value + "=" + secret_for(key));
      rewritten += m.str();
    } else {
      test::write_file(credentials + "/" + value, secret_for(key) + "\n");
      rewritten += m.str();
    }
  }
  rewritten.append(from, text.cend());
  if (ex.fragment) rewritten = kMinimalConfig + rewritten;

  const std::string path = dir.file("example.toml");
  test::write_file(path, rewritten);
  test::Process p(test::Process::Options{{agent_binary(), "check-config", path}, env, ""});
  auto status = p.wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value()) << "check-config did not finish";
  EXPECT_TRUE(status->exited && status->code == 0)
      << ex.file << ":" << ex.line << ": this example fails check-config (" << status->to_string() << "):\n"
      << p.stderr_text() << p.stdout_text() << "--- as checked:\n"
      << rewritten;
}

INSTANTIATE_TEST_SUITE_P(Docs, DocExample, ::testing::ValuesIn(all_examples()),
                         [](const ::testing::TestParamInfo<Example>& param_info) { return param_info.param.name(); });

// The extraction itself: a docs tree without a single example would make the
// suite above pass by testing nothing.
TEST(DocExamples, FindsTheReadmeExamples) {
  auto all = all_examples();
  std::size_t in_readme = 0;
  for (const auto& ex : all) in_readme += ex.file == "README.md" ? 1 : 0;
  EXPECT_GE(in_readme, 2u);
  EXPECT_GE(all.size(), 6u);
}

}  // namespace
}  // namespace nightshift

// Every key the config parser knows is documented: the known keys each table
// reports for an unknown one must all appear as `key` in the docs the man page
// nightshift.toml(5) is made of (docs/configuration.md) or those it points to.
namespace nightshift {
namespace {

std::vector<std::string> known_keys(const std::string& toml, const std::string& table) {
  ConfigResult r = parse_config(toml, "keys.toml");
  for (const auto& e : r.errors) {
    const auto at = e.message.find("(known keys: ");
    if (at == std::string::npos || e.key.find("zz_unknown") == std::string::npos) continue;
    std::vector<std::string> keys;
    std::string list = e.message.substr(at + 13, e.message.size() - at - 14);
    for (std::size_t start = 0; start < list.size();) {
      const auto comma = list.find(", ", start);
      keys.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 2;
    }
    return keys;
  }
  ADD_FAILURE() << table << ": no \"known keys\" error for zz_unknown";
  return {};
}

TEST(DocExamples, EveryConfigKeyIsDocumented) {
  const std::string root = NIGHTSHIFT_TEST_SOURCE_DIR;
  std::string docs;
  for (const char* f : {"configuration.md", "rules.md", "incidents.md", "notifications.md", "status-and-api.md"}) {
    docs += test::read_file(root + "/docs/" + f);
  }
  const std::string target = "[[target]]\nname = \"t\"\naddress = \"127.0.0.1\"\n";
  const std::vector<std::pair<std::string, std::string>> tables = {
      {"agent", "[agent]\nzz_unknown = 1\n"},
      {"defaults", "[defaults]\nzz_unknown = 1\n"},
      {"notify", "[notify]\nzz_unknown = 1\n"},
      {"api", "[api]\nzz_unknown = 1\n"},
      {"status", "[status]\nzz_unknown = 1\n"},
      {"incidents", "[incidents]\nzz_unknown = 1\n"},
      {"rules", "[rules]\nzz_unknown = 1\n"},
      {"rule", "[[rule]]\nname = \"r\"\ncondition = \"success == 0\"\nzz_unknown = 1\n"},
      {"sink", "[[sink]]\nname = \"s\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1/\"\nzz_unknown = 1\n"},
      {"target", target + "zz_unknown = 1\n  [[target.probe]]\n  kind = \"icmp\"\n"},
      {"probe tcp", target + "  [[target.probe]]\n  kind = \"tcp\"\n  port = 22\n  zz_unknown = 1\n"},
      {"probe icmp", target + "  [[target.probe]]\n  kind = \"icmp\"\n  zz_unknown = 1\n"},
      {"probe snmp", target + "  [[target.probe]]\n  kind = \"snmp\"\n  zz_unknown = 1\n"},
  };
  std::size_t checked = 0;
  for (const auto& [table, toml] : tables) {
    for (const auto& key : known_keys(toml, table)) {
      SCOPED_TRACE(table + "." + key);
      ++checked;
      const std::string qualified = table.substr(0, table.find(' ')) + "." + key;  // `api.public_read`
      if (docs.find("`" + key + "`") != std::string::npos || docs.find("`" + qualified + "`") != std::string::npos) {
        continue;
      }
      // Secrets: `<base>_file` / `_env` / `_credential` are documented once,
      // as forms of every secret key.
      bool secret_form = false;
      for (const char* suffix : {"_file", "_env", "_credential"}) {
        const std::string s(suffix);
        if (key.size() > s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0) {
          const std::string base = key.substr(0, key.size() - s.size());
          secret_form = docs.find("`" + base + "`") != std::string::npos ||
                        docs.find("`" + base + "_file`") != std::string::npos ||
                        docs.find("`" + base + "_file`/") != std::string::npos;
        }
      }
      EXPECT_TRUE(secret_form) << "config key " << table << "." << key << " is not documented in docs/";
    }
  }
  EXPECT_GT(checked, 60u);
}

}  // namespace
}  // namespace nightshift
