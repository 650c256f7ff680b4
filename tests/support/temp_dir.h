// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with everything
// in it when the object goes away. Plus small file helpers for tests.
//
// Thread safety: one thread per object.
#pragma once

#include <string>

namespace nightshift::test {

// mkdtemp under $TMPDIR or /tmp; throws std::runtime_error on failure.
std::string make_temp_dir(const std::string& prefix);
// Removes a tree; errors are ignored (best effort cleanup).
void remove_tree(const std::string& path);

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "nightshift-test-") : path_(make_temp_dir(prefix)) {}
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path` atomically (write a sibling, then rename), so a
// process reading it concurrently sees the old or the new file, never half.
// Throws std::runtime_error on failure.
void write_file(const std::string& path, const std::string& text);
// The whole file; empty if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace nightshift::test
