// SPDX-License-Identifier: MIT
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <string>

namespace matgrad {

/// Element type of a value. Kernels are templated on the scalar type.
enum class DType : std::uint8_t { f64 = 0, f32 = 1 };

inline std::size_t itemsize(DType d) { return d == DType::f64 ? 8 : 4; }
const char* dtype_name(DType d);

template <class T> struct dtype_of;
template <> struct dtype_of<double> {
  static constexpr DType value = DType::f64;
};
template <> struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};

/// A 0-D, 1-D or 2-D shape. Storage is always a row-major rows x cols matrix:
/// 0-D is 1 x 1 and a (n,) vector is 1 x n.
struct Shape {
  std::int64_t rows = 1;
  std::int64_t cols = 1;
  std::int8_t ndim = 0;

  static Shape scalar() { return {1, 1, 0}; }
  static Shape vector(std::int64_t n) { return {1, n, 1}; }
  static Shape matrix(std::int64_t r, std::int64_t c) { return {r, c, 2}; }

  std::int64_t size() const { return rows * cols; }
  /// False when a dimension is negative or the element count (or its bytes) overflows.
  bool representable() const {
    std::int64_t n = 0;
    return rows >= 0 && cols >= 0 && !__builtin_mul_overflow(rows, cols, &n) && n <= (std::int64_t(1) << 59);
  }
  bool same_storage(const Shape& o) const { return rows == o.rows && cols == o.cols; }
  bool operator==(const Shape& o) const { return same_storage(o) && ndim == o.ndim; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  /// The shape as a Python tuple literal: "()", "(3,)", "(3, 4)".
  std::string str() const;
};

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using MapMat = Eigen::Map<RowMat<T>, Eigen::Unaligned>;
template <class T> using CMapMat = Eigen::Map<const RowMat<T>, Eigen::Unaligned>;
template <class T> using Arr = Eigen::Array<T, 1, Eigen::Dynamic>;
template <class T> using MapArr = Eigen::Map<Arr<T>, Eigen::Unaligned>;
template <class T> using CMapArr = Eigen::Map<const Arr<T>, Eigen::Unaligned>;

// Note [buffers and the pool]
// Values larger than a node's inline storage live in a Buffer: a header and its data in one
// allocation, reference counted, recycled through a per-thread free list per power-of-two size
// class. The total kept in free lists is bounded per thread (cache_limit(): 256 MiB unless
// MATGRAD_CACHE_LIMIT or set_cache_limit says otherwise); beyond that, buffers go back to the
// system, and so does the whole cache when its thread exits. Without the pool every large temporary would be a fresh
// mmap that page-faults on each call. A Buffer may also wrap memory owned by someone else (a NumPy array): then
// `release` is called with `ctx` when the last reference goes.
struct Buffer {
  std::int32_t rc = 0;
  std::int32_t size_class = -1;  // -1: external memory
  std::size_t bytes = 0;
  void* data = nullptr;
  void (*release)(void* ctx) = nullptr;
  void* ctx = nullptr;

  /// A pooled buffer of at least `bytes` bytes, 64-byte aligned, uninitialised.
  static Buffer* allocate(std::size_t bytes);
  /// A buffer over external memory; `release(ctx)` runs when the last reference goes.
  static Buffer* external(void* data, std::size_t bytes, void (*release)(void*), void* ctx);
  void ref() { ++rc; }
  void unref() {
    if (--rc == 0) destroy();
  }

 private:
  void destroy();
};

/// Bytes currently cached in this thread's free lists (for tests and diagnostics).
std::size_t pool_cached_bytes();
/// Return every cached buffer of this thread to the system.
void pool_trim();
/// The bound on the bytes each thread keeps in its free lists (Note [buffers and the pool]).
std::size_t cache_limit();
/// Set that bound for every thread; returns the previous one. This thread's cache shrinks to it
/// now, other threads' when they next free a buffer. 0 caches nothing (every large value is a
/// fresh allocation).
std::size_t set_cache_limit(std::size_t bytes);
/// Parse a byte size: digits, optionally followed by K, M or G (KiB, MiB, GiB; "MiB", "MB" and
/// "M" alike). False for anything else or an overflow.
bool parse_byte_size(const char* text, std::size_t& out);
/// Why MATGRAD_CACHE_LIMIT was ignored ("" when it is unset or valid).
const std::string& cache_limit_env_error();
/// How many buffers this thread has allocated (from its free lists or the system), ever.
std::int64_t pool_allocations();

/// An owning or borrowing handle on a dense value: data pointer, shape, dtype, and an optional
/// counted buffer. Without a buffer it borrows memory that outlives it (a node's value).
class Val {
 public:
  Val() = default;
  Val(void* data, Shape shape, DType dtype, Buffer* buf = nullptr)
      : data_(data), buf_(buf), shape_(shape), dtype_(dtype) {
    if (buf_) buf_->ref();
  }
  Val(const Val& o) : data_(o.data_), buf_(o.buf_), shape_(o.shape_), dtype_(o.dtype_) {
    if (buf_) buf_->ref();
  }
  Val(Val&& o) noexcept : data_(o.data_), buf_(o.buf_), shape_(o.shape_), dtype_(o.dtype_) {
    o.data_ = nullptr;
    o.buf_ = nullptr;
  }
  Val& operator=(Val o) noexcept {
    std::swap(data_, o.data_);
    std::swap(buf_, o.buf_);
    shape_ = o.shape_;
    dtype_ = o.dtype_;
    return *this;
  }
  ~Val() {
    if (buf_) buf_->unref();
  }

  /// A fresh pooled value (uninitialised).
  static Val empty(Shape s, DType d);
  /// A fresh pooled value filled with `v`.
  static Val filled(Shape s, DType d, double v);

  explicit operator bool() const { return data_ != nullptr; }
  void* data() const { return data_; }
  Buffer* buffer() const { return buf_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  /// True when this handle is the only reference to an owned buffer (safe to update in place).
  bool unique() const { return buf_ && buf_->rc == 1 && buf_->size_class >= 0; }
  /// Same data, another shape of the same size (C-order reshape is free).
  Val relabel(Shape s) const {
    Val v(*this);
    v.shape_ = s;
    return v;
  }

  template <class T> T* ptr() const { return static_cast<T*>(data_); }
  template <class T> MapMat<T> mat() const { return MapMat<T>(ptr<T>(), shape_.rows, shape_.cols); }
  template <class T> MapArr<T> arr() const { return MapArr<T>(ptr<T>(), shape_.size()); }

 private:
  void* data_ = nullptr;
  Buffer* buf_ = nullptr;
  Shape shape_{};
  DType dtype_ = DType::f64;
};

}  // namespace matgrad
