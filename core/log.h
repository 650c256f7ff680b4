// Logging: one line per event on stderr, logfmt style, for journald and humans:
//   ts=2026-11-24T11:45:55.123Z level=info msg="config reloaded" targets=12
// Values with spaces or quotes are quoted and escaped. Never pass secrets.
//
// Thread safety: any thread; lines are written whole.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace nightshift {
enum class LogLevel { kDebug, kInfo, kWarn, kError };
}  // namespace nightshift

namespace nightshift::log {

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, std::int64_t v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, std::size_t v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, double v);
  std::string_view key;
  std::string value;
};

void set_level(LogLevel level);
// Replaces the output (stderr by default); for tests. Empty function restores stderr.
void set_sink(std::function<void(const std::string& line)> sink);

void write(LogLevel level, std::string_view msg, std::initializer_list<Field> fields);
inline void debug(std::string_view msg, std::initializer_list<Field> f = {}) { write(LogLevel::kDebug, msg, f); }
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) { write(LogLevel::kInfo, msg, f); }
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) { write(LogLevel::kWarn, msg, f); }
inline void error(std::string_view msg, std::initializer_list<Field> f = {}) { write(LogLevel::kError, msg, f); }

// logfmt quoting of one value. Pure.
std::string quote(std::string_view value);

}  // namespace nightshift::log
