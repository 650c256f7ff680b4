#include "rules/rule_expr.h"

#include "core/suggest.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace nightshift::rules {

struct Node {
  enum class Kind { kLiteral, kVariable, kNot, kAnd, kOr, kCompare } kind;
  ValueType type = ValueType::kBool;
  Value literal;
  std::string name;  // variable
  std::string op;    // compare
  std::shared_ptr<const Node> lhs, rhs;
};

namespace {

const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::kNumber: return "a number";
    case ValueType::kString: return "a string";
    case ValueType::kBool: return "a condition (true/false)";
  }
  return "?";
}

struct Token {
  enum class Kind { kEnd, kNumber, kString, kIdent, kOp, kLParen, kRParen } kind;
  std::string text;
  double number = 0;
  std::size_t column = 0;  // 1-based
};

class Parser {
 public:
  Parser(std::string_view text, const std::vector<Variable>& vars) : text_(text), vars_(vars) {}

  Result<std::shared_ptr<const Node>> parse() {
    if (!advance()) return error_;
    auto root = parse_or();
    if (!root) return error_;
    if (tok_.kind != Token::Kind::kEnd) return fail(tok_.column, "expected \"and\", \"or\" or the end", describe(tok_));
    if ((*root)->type != ValueType::kBool) {
      return fail(1, std::string("expected a condition, found ") + type_name((*root)->type) +
                         " (compare it, e.g. `loss > 20%`)", "");
    }
    return *root;
  }

  std::vector<std::string> used;

 private:
  using NodeP = std::shared_ptr<const Node>;

  Error fail(std::size_t column, const std::string& expected, const std::string& found) {
    error_ = Error::invalid("column " + std::to_string(column) + ": " + expected +
                            (found.empty() ? "" : ", found " + found));
    error_.column = column;
    return error_;
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::kEnd: return "the end of the condition";
      case Token::Kind::kString: return "string \"" + t.text + "\"";
      default: return "\"" + t.text + "\"";
    }
  }

  // Reads the next token into tok_; false (with error_) on a lexical error.
  bool advance() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    tok_ = Token{};
    tok_.column = pos_ + 1;
    if (pos_ >= text_.size()) {
      tok_.kind = Token::Kind::kEnd;
      return true;
    }
    const char c = text_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && pos_ + 1 < text_.size() &&
                                                        std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])))) {
      const std::size_t start = pos_;
      while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.')) ++pos_;
      const std::string digits(text_.substr(start, pos_ - start));
      if (std::count(digits.begin(), digits.end(), '.') > 1) {
        fail(start + 1, "expected a number", "\"" + digits + "\"");
        return false;
      }
      double v = std::strtod(digits.c_str(), nullptr);
      std::size_t unit_start = pos_;
      while (pos_ < text_.size() && (std::isalpha(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '%')) ++pos_;
      const std::string_view unit = text_.substr(unit_start, pos_ - unit_start);
      if (unit == "%") v /= 100;
      else if (unit == "us") v /= 1e6;
      else if (unit == "ms") v /= 1e3;
      else if (unit == "s" || unit.empty()) {}
      else if (unit == "m") v *= 60;
      else if (unit == "h") v *= 3600;
      else {
        fail(unit_start + 1, "expected a unit (%, us, ms, s, m, h) or nothing", "\"" + std::string(unit) + "\"");
        return false;
      }
      tok_.kind = Token::Kind::kNumber;
      tok_.number = v;
      tok_.text = std::string(text_.substr(start, pos_ - start));
      return true;
    }
    if (c == '"') {
      const std::size_t start = pos_++;
      std::string s;
      while (pos_ < text_.size() && text_[pos_] != '"') {
        if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
        s += text_[pos_++];
      }
      if (pos_ >= text_.size()) {
        fail(start + 1, "expected a closing '\"'", "the end of the condition");
        return false;
      }
      ++pos_;
      tok_.kind = Token::Kind::kString;
      tok_.text = s;
      return true;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t start = pos_;
      while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
      tok_.kind = Token::Kind::kIdent;
      tok_.text = std::string(text_.substr(start, pos_ - start));
      return true;
    }
    if (c == '(' || c == ')') {
      tok_.kind = c == '(' ? Token::Kind::kLParen : Token::Kind::kRParen;
      tok_.text = std::string(1, c);
      ++pos_;
      return true;
    }
    for (const char* op : {"==", "!=", "<=", ">=", "<", ">"}) {
      const std::string_view o(op);
      if (text_.substr(pos_, o.size()) == o) {
        tok_.kind = Token::Kind::kOp;
        tok_.text = std::string(o);
        pos_ += o.size();
        return true;
      }
    }
    if (c == '=') {
      fail(pos_ + 1, "expected \"==\" to compare", "\"=\"");
      return false;
    }
    fail(pos_ + 1, "expected a number, string, variable, comparison or parenthesis",
         "\"" + std::string(1, c) + "\"");
    return false;
  }

  bool is_word(const char* w) const { return tok_.kind == Token::Kind::kIdent && tok_.text == w; }

  std::optional<NodeP> logical(Node::Kind kind, NodeP lhs, NodeP rhs, std::size_t lhs_col, std::size_t rhs_col) {
    const char* word = kind == Node::Kind::kAnd ? "\"and\"" : "\"or\"";
    if (lhs->type != ValueType::kBool) {
      fail(lhs_col, std::string("expected a condition on the left of ") + word, type_name(lhs->type));
      return std::nullopt;
    }
    if (rhs->type != ValueType::kBool) {
      fail(rhs_col, std::string("expected a condition on the right of ") + word, type_name(rhs->type));
      return std::nullopt;
    }
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->lhs = std::move(lhs);
    n->rhs = std::move(rhs);
    return n;
  }

  std::optional<NodeP> parse_or() {
    const std::size_t col = tok_.column;
    auto lhs = parse_and();
    if (!lhs) return std::nullopt;
    while (is_word("or")) {
      if (!more_terms(tok_.column)) return std::nullopt;
      if (!advance()) return std::nullopt;
      const std::size_t rcol = tok_.column;
      auto rhs = parse_and();
      if (!rhs) return std::nullopt;
      lhs = logical(Node::Kind::kOr, *lhs, *rhs, col, rcol);
      if (!lhs) return std::nullopt;
    }
    return lhs;
  }

  std::optional<NodeP> parse_and() {
    const std::size_t col = tok_.column;
    auto lhs = parse_not();
    if (!lhs) return std::nullopt;
    while (is_word("and")) {
      if (!more_terms(tok_.column)) return std::nullopt;
      if (!advance()) return std::nullopt;
      const std::size_t rcol = tok_.column;
      auto rhs = parse_not();
      if (!rhs) return std::nullopt;
      lhs = logical(Node::Kind::kAnd, *lhs, *rhs, col, rcol);
      if (!lhs) return std::nullopt;
    }
    return lhs;
  }

  // Recursion guard: parentheses and "not" nest; a hostile or broken condition
  // must get an error, not a stack overflow (found by rule_expr_fuzz).
  bool enter(std::size_t column) {
    if (++depth_ <= kMaxDepth) return true;
    fail(column, "expected at most " + std::to_string(kMaxDepth) + " nested parentheses or \"not\"", "deeper nesting");
    return false;
  }

  // "and"/"or" chains build a tree as deep as they are long; evaluation recurses.
  bool more_terms(std::size_t column) {
    if (++terms_ <= kMaxTerms) return true;
    fail(column, "expected at most " + std::to_string(kMaxTerms) + " \"and\"/\"or\" in one condition", "more");
    return false;
  }

  std::optional<NodeP> parse_not() {
    if (is_word("not")) {
      if (!enter(tok_.column)) return std::nullopt;
      struct Leave {
        int& d;
        ~Leave() { --d; }
      } leave{depth_};
      if (!advance()) return std::nullopt;
      const std::size_t col = tok_.column;
      auto inner = parse_not();
      if (!inner) return std::nullopt;
      if ((*inner)->type != ValueType::kBool) {
        fail(col, "expected a condition after \"not\"", type_name((*inner)->type));
        return std::nullopt;
      }
      auto n = std::make_shared<Node>();
      n->kind = Node::Kind::kNot;
      n->lhs = *inner;
      return n;
    }
    return parse_comparison();
  }

  std::optional<NodeP> parse_comparison() {
    const std::size_t lcol = tok_.column;
    auto lhs = parse_operand();
    if (!lhs) return std::nullopt;
    if (tok_.kind != Token::Kind::kOp) return lhs;
    const std::string op = tok_.text;
    const std::size_t opcol = tok_.column;
    if (!advance()) return std::nullopt;
    const std::size_t rcol = tok_.column;
    auto rhs = parse_operand();
    if (!rhs) return std::nullopt;
    const ValueType lt = (*lhs)->type, rt = (*rhs)->type;
    if (lt != rt) {
      fail(rcol, std::string("expected ") + type_name(lt) + " to compare with the left side", type_name(rt));
      return std::nullopt;
    }
    if (lt != ValueType::kNumber && op != "==" && op != "!=") {
      fail(opcol, std::string("expected \"==\" or \"!=\" for ") + type_name(lt), "\"" + op + "\"");
      return std::nullopt;
    }
    (void)lcol;
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kCompare;
    n->op = op;
    n->lhs = *lhs;
    n->rhs = *rhs;
    if (tok_.kind == Token::Kind::kOp) {
      fail(tok_.column, "expected \"and\", \"or\" or the end (comparisons do not chain)", describe(tok_));
      return std::nullopt;
    }
    return n;
  }

  std::optional<NodeP> parse_operand() {
    auto n = std::make_shared<Node>();
    switch (tok_.kind) {
      case Token::Kind::kNumber:
        n->kind = Node::Kind::kLiteral;
        n->type = ValueType::kNumber;
        n->literal = tok_.number;
        break;
      case Token::Kind::kString:
        n->kind = Node::Kind::kLiteral;
        n->type = ValueType::kString;
        n->literal = tok_.text;
        break;
      case Token::Kind::kIdent: {
        if (tok_.text == "true" || tok_.text == "false") {
          n->kind = Node::Kind::kLiteral;
          n->type = ValueType::kBool;
          n->literal = tok_.text == "true";
          break;
        }
        if (tok_.text == "and" || tok_.text == "or" || tok_.text == "not") {
          fail(tok_.column, "expected a value or variable", describe(tok_));
          return std::nullopt;
        }
        auto it = std::find_if(vars_.begin(), vars_.end(), [&](const Variable& v) { return v.name == tok_.text; });
        if (it == vars_.end()) {
          std::vector<std::string_view> names;
          for (const auto& v : vars_) names.push_back(v.name);
          const std::string best = closest_match(tok_.text, names);
          std::string expected;
          if (!best.empty()) {
            expected = "expected a known variable (did you mean \"" + best + "\"?)";
          } else {
            std::string known;
            for (const auto& v : vars_) known += (known.empty() ? "" : ", ") + v.name;
            expected = "expected a known variable (" + known + ")";
          }
          fail(tok_.column, expected, "\"" + tok_.text + "\"");
          return std::nullopt;
        }
        n->kind = Node::Kind::kVariable;
        n->type = it->type;
        n->name = it->name;
        if (std::find(used.begin(), used.end(), it->name) == used.end()) used.push_back(it->name);
        break;
      }
      case Token::Kind::kLParen: {
        const std::size_t open = tok_.column;
        if (!enter(open)) return std::nullopt;
        struct Leave {
          int& d;
          ~Leave() { --d; }
        } leave{depth_};
        if (!advance()) return std::nullopt;
        auto inner = parse_or();
        if (!inner) return std::nullopt;
        if (tok_.kind != Token::Kind::kRParen) {
          fail(tok_.column, "expected \")\" to close the \"(\" at column " + std::to_string(open), describe(tok_));
          return std::nullopt;
        }
        if (!advance()) return std::nullopt;
        return inner;
      }
      default:
        fail(tok_.column, "expected a value, variable or \"(\"", describe(tok_));
        return std::nullopt;
    }
    if (!advance()) return std::nullopt;
    return n;
  }

  std::string_view text_;
  const std::vector<Variable>& vars_;
  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxTerms = 256;
  int terms_ = 0;
  std::size_t pos_ = 0;
  int depth_ = 0;
  Token tok_;
  Error error_;
};

std::optional<Value> value_of(const Node& n, const Environment& env);

std::optional<bool> eval(const Node& n, const Environment& env) {
  switch (n.kind) {
    case Node::Kind::kNot: {
      auto v = eval(*n.lhs, env);
      if (!v) return std::nullopt;
      return !*v;
    }
    case Node::Kind::kAnd: {
      auto a = eval(*n.lhs, env);
      if (a == false) return false;
      auto b = eval(*n.rhs, env);
      if (b == false) return false;
      if (!a || !b) return std::nullopt;
      return true;
    }
    case Node::Kind::kOr: {
      auto a = eval(*n.lhs, env);
      if (a == true) return true;
      auto b = eval(*n.rhs, env);
      if (b == true) return true;
      if (!a || !b) return std::nullopt;
      return false;
    }
    case Node::Kind::kCompare: {
      auto a = value_of(*n.lhs, env);
      auto b = value_of(*n.rhs, env);
      if (!a || !b || a->index() != b->index()) return std::nullopt;
      if (const double* x = std::get_if<double>(&*a)) {
        const double y = std::get<double>(*b);
        if (std::isnan(*x) || std::isnan(y)) return std::nullopt;
        if (n.op == "==") return *x == y;
        if (n.op == "!=") return *x != y;
        if (n.op == "<") return *x < y;
        if (n.op == "<=") return *x <= y;
        if (n.op == ">") return *x > y;
        return *x >= y;
      }
      return n.op == "==" ? *a == *b : *a != *b;
    }
    case Node::Kind::kLiteral:
    case Node::Kind::kVariable: {
      auto v = value_of(n, env);
      if (!v) return std::nullopt;
      if (const bool* b = std::get_if<bool>(&*v)) return *b;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<Value> value_of(const Node& n, const Environment& env) {
  if (n.kind == Node::Kind::kLiteral) return n.literal;
  if (n.kind == Node::Kind::kVariable) return env.get(n.name);
  auto b = eval(n, env);
  if (!b) return std::nullopt;
  return Value(*b);
}

}  // namespace

Result<Condition> Condition::parse(std::string_view text, const std::vector<Variable>& variables) {
  Parser p(text, variables);
  auto root = p.parse();
  if (!root.ok()) return root.error();
  Condition c;
  c.text_ = std::string(text);
  c.root_ = std::move(root.value());
  c.used_ = std::move(p.used);
  return c;
}

std::optional<bool> Condition::evaluate(const Environment& env) const { return eval(*root_, env); }

}  // namespace nightshift::rules
