// A FIFO in one contiguous buffer that grows by doubling: for per-target
// windows, where a std::deque's blocks and map cost more than the entries.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace nightshift {

template <class T>
class Ring {
 public:
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // i = 0 is the oldest.
  const T& operator[](std::size_t i) const { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  T& operator[](std::size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  const T& front() const { return (*this)[0]; }
  const T& back() const { return (*this)[size_ - 1]; }

  void push_back(T value) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = std::move(value);
    ++size_;
  }
  void pop_front() {
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void pop_front(std::size_t n) {
    if (n == 0) return;
    head_ = (head_ + n) & (buf_.size() - 1);
    size_ -= n;
  }

 private:
  void grow() {
    std::vector<T> next(buf_.empty() ? 4 : buf_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) next[i] = std::move((*this)[i]);
    buf_ = std::move(next);
    head_ = 0;
  }

  std::vector<T> buf_;  // a power of two in size, or empty
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace nightshift
