#include "tests/support/prom_text.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace nightshift::test {

namespace {
bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || std::isdigit(static_cast<unsigned char>(c)); }

class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  void skip_blanks() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool done() const { return i_ >= s_.size(); }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool name(std::string* out, bool label) {
    const std::size_t b = i_;
    if (i_ >= s_.size() || !name_start(s_[i_]) || (label && s_[i_] == ':')) return false;
    while (i_ < s_.size() && name_char(s_[i_]) && !(label && s_[i_] == ':')) ++i_;
    *out = std::string(s_.substr(b, i_ - b));
    return true;
  }
  bool quoted(std::string* out, std::string* err) {
    if (!eat('"')) {
      *err = "expected '\"' at column " + std::to_string(i_ + 1);
      return false;
    }
    out->clear();
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) break;
        const char e = s_[i_++];
        switch (e) {
          case 'n':
            *out += '\n';
            break;
          case '\\':
            *out += '\\';
            break;
          case '"':
            *out += '"';
            break;
          default:
            *err = std::string("invalid escape \\") + e + " at column " + std::to_string(i_);
            return false;
        }
      } else {
        *out += c;
      }
    }
    *err = "unterminated label value";
    return false;
  }
  std::string_view token() {
    const std::size_t b = i_;
    while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
    return s_.substr(b, i_ - b);
  }
  std::size_t column() const { return i_ + 1; }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

std::optional<double> parse_value(std::string_view t) {
  if (t == "+Inf" || t == "Inf") return std::numeric_limits<double>::infinity();
  if (t == "-Inf") return -std::numeric_limits<double>::infinity();
  if (t == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (t.empty()) return std::nullopt;
  const std::string s(t);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

std::string unescape_help(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == '\\')) {
      out += s[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// "# HELP name text" / "# TYPE name type"; other comments are ignored.
void parse_comment(std::string_view line, PromText& out, const std::string& where) {
  LineParser p(line.substr(1));
  p.skip_blanks();
  const std::string_view keyword = p.token();
  if (keyword != "HELP" && keyword != "TYPE") return;
  p.skip_blanks();
  std::string name;
  if (!p.name(&name, false)) {
    out.errors.push_back(where + "# " + std::string(keyword) + " without a metric name");
    return;
  }
  std::string_view rest = line.substr(1 + p.column() - 1);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  if (keyword == "HELP") {
    out.help[name] = unescape_help(rest);
    return;
  }
  static const std::set<std::string, std::less<>> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
  if (!kTypes.count(rest)) {
    out.errors.push_back(where + "unknown TYPE \"" + std::string(rest) + "\" for " + name);
    return;
  }
  if (out.types.count(name)) out.errors.push_back(where + "second TYPE line for " + name);
  out.types[name] = std::string(rest);
}
}  // namespace

std::string PromSample::to_string() const {
  std::ostringstream o;
  o << name;
  if (!labels.empty()) {
    o << '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      o << (first ? "" : ",") << k << "=\"" << v << '"';
      first = false;
    }
    o << '}';
  }
  o << ' ' << value;
  return o.str();
}

void PrintTo(const PromSample& s, std::ostream* os) { *os << s.to_string(); }

PromText parse_prom_text(std::string_view text) {
  PromText out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty()) continue;
    if (line.front() == '#') {
      parse_comment(line, out, where);
      continue;
    }
    LineParser p(line);
    PromSample s;
    if (!p.name(&s.name, false)) {
      out.errors.push_back(where + "expected a metric name");
      continue;
    }
    p.skip_blanks();
    std::string err;
    bool bad = false;
    if (p.eat('{')) {
      for (int guard = 0; guard < 10000; ++guard) {
        p.skip_blanks();
        if (p.eat('}')) break;
        std::string key, value;
        if (!p.name(&key, true)) {
          err = "expected a label name at column " + std::to_string(p.column());
          bad = true;
          break;
        }
        p.skip_blanks();
        if (!p.eat('=')) {
          err = "expected '=' after label " + key;
          bad = true;
          break;
        }
        p.skip_blanks();
        if (!p.quoted(&value, &err)) {
          bad = true;
          break;
        }
        if (!s.labels.emplace(key, value).second) {
          err = "duplicate label " + key;
          bad = true;
          break;
        }
        p.skip_blanks();
        if (p.eat(',')) continue;
        if (p.eat('}')) break;
        err = "expected ',' or '}' at column " + std::to_string(p.column());
        bad = true;
        break;
      }
    }
    if (bad) {
      out.errors.push_back(where + err);
      continue;
    }
    p.skip_blanks();
    const std::string_view value_token = p.token();
    auto value = parse_value(value_token);
    if (!value) {
      out.errors.push_back(where + "bad sample value \"" + std::string(value_token) + "\"");
      continue;
    }
    s.value = *value;
    p.skip_blanks();
    if (!p.done()) {
      const std::string ts(p.token());
      char* end = nullptr;
      const long long t = std::strtoll(ts.c_str(), &end, 10);
      if (ts.empty() || end != ts.c_str() + ts.size()) {
        out.errors.push_back(where + "bad timestamp \"" + ts + "\"");
        continue;
      }
      s.timestamp_ms = t;
      p.skip_blanks();
      if (!p.done()) {
        out.errors.push_back(where + "trailing text after the timestamp");
        continue;
      }
    }
    out.samples.push_back(std::move(s));
  }
  return out;
}

std::vector<PromSample> PromText::select(const std::string& name, const PromLabels& subset) const {
  std::vector<PromSample> found;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : subset) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) found.push_back(s);
  }
  return found;
}

std::optional<double> PromText::value(const std::string& name, const PromLabels& subset) const {
  auto found = select(name, subset);
  if (found.size() != 1) return std::nullopt;
  return found.front().value;
}

std::set<std::string> PromText::names() const {
  std::set<std::string> n;
  for (const auto& s : samples) n.insert(s.name);
  return n;
}

}  // namespace nightshift::test
