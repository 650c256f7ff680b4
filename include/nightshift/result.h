// Error and Result<T>: errors are values with a kind (C++20 has no std::expected).
// Exceptions from libraries (toml++) are caught at the module edge and turned
// into these.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <variant>

namespace nightshift {

enum class ErrorCode {
  kInvalidArgument,  // the caller's input is wrong; retrying will not help
  kNotFound,
  kIo,               // the operating system refused (file, socket)
  kUnavailable,      // try again later: a budget that refills, a peer that may come back
  kLimitReached,     // a configured cap is full (too many silences): waiting will not help, removing some will
  kUnsupportedMediaType,  // input in a form we do not read (an API body that is not JSON)
  kInternal,
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  // Where in the input text it applies, 1-based (a rule condition's column);
  // 0 when it has no position.
  std::size_t column = 0;

  static Error invalid(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
  static Error not_found(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Error io(std::string m) { return {ErrorCode::kIo, std::move(m)}; }
  static Error unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Error limit_reached(std::string m) { return {ErrorCode::kLimitReached, std::move(m)}; }
  static Error unsupported_media_type(std::string m) { return {ErrorCode::kUnsupportedMediaType, std::move(m)}; }
  static Error internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
};

// [[nodiscard]]: an ignored result is an ignored error; say `(void)` when
// that is meant.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const Error& error() const { return std::get<Error>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success, or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace nightshift
