// OptionReader: how a probe kind reads its own keys from a probe's config table
// without knowing TOML. The config module implements it; every error it reports
// carries file:line:col and the key path, so a probe kind only says *what* is
// wrong. Keys a kind never asks for are reported as unknown by the config module.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nightshift/clock.h"

namespace nightshift {

class OptionReader {
 public:
  virtual ~OptionReader() = default;
  // Each getter returns nullopt when the key is absent (reporting an error if
  // `required`) or has the wrong type or range (always reporting an error).
  virtual std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                              std::int64_t max, bool required) = 0;
  virtual std::optional<std::string> string(std::string_view key, bool required) = 0;
  virtual std::optional<bool> boolean(std::string_view key, bool required) = 0;
  // A finite number, written as a float or an integer (0.1, 10, 1e-3).
  virtual std::optional<double> number(std::string_view key, bool required) = 0;
  virtual std::optional<Duration> duration(std::string_view key, bool required) = 0;
  // A semantic error about `key` (located at its value, or at the table if absent).
  virtual void error(std::string_view key, std::string message) = 0;
  // An array of strings / of integers in [min, max].
  virtual std::optional<std::vector<std::string>> strings(std::string_view key, bool required) = 0;
  virtual std::optional<std::vector<std::int64_t>> integers(std::string_view key, std::int64_t min, std::int64_t max,
                                                            bool required) = 0;
  // An array of tables (e.g. oids = [{...}, {...}]): one reader per table.
  // Call done() on each when its keys are read (reports unknown keys).
  virtual std::vector<std::unique_ptr<OptionReader>> tables(std::string_view key) = 0;
  virtual void done() {}
  // A secret from `<base>_file` (file content, trailing whitespace dropped) or
  // `<base>_env`, or, when `plain_allowed`, `<base>` itself. Errors name the
  // key and the file or variable, never the value.
  virtual std::optional<std::string> secret(std::string_view base, bool required, bool plain_allowed) = 0;
  // The key a secret was given under (`<base>_file`, `<base>_env` or `<base>`),
  // for an error about its value, e.g. a password too short; `<base>_file`
  // when none is given.
  virtual std::string secret_key(std::string_view base) const = 0;
};

}  // namespace nightshift
