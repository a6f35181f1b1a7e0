// SPDX-License-Identifier: MIT
#include <matgrad/value.hpp>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace matgrad {

const char* dtype_name(DType d) { return d == DType::f64 ? "float64" : "float32"; }

std::string Shape::str() const {
  switch (ndim) {
    case 0:
      return "()";
    case 1:
      return "(" + std::to_string(cols) + ",)";
    default:
      return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
  }
}

namespace {

constexpr std::size_t kHeader = 64;  // Buffer header, padded so data stays 64-byte aligned
constexpr int kMinClass = 8;         // 256 bytes
constexpr int kMaxClass = 40;
constexpr std::size_t kPoolCacheBytes = std::size_t(256) << 20;

static_assert(sizeof(Buffer) <= kHeader, "Buffer header must fit its padding");

thread_local bool t_pool_gone = false;  // set when this thread's pool has been destroyed

struct Pool {
  std::vector<void*> free[kMaxClass + 1];
  std::size_t cached = 0;
  ~Pool() {
    trim();
    t_pool_gone = true;
  }
  void trim() {
    for (int c = 0; c <= kMaxClass; ++c) {
      for (void* p : free[c]) std::free(p);
      free[c].clear();
    }
    cached = 0;
  }
};

Pool& pool() {
  thread_local Pool p;
  return p;
}

int class_of(std::size_t bytes) {
  const std::size_t total = bytes + kHeader;  // >= 64
  const int c = 64 - __builtin_clzll(total - 1);  // ceil(log2(total))
  return c < kMinClass ? kMinClass : c;
}

}  // namespace

namespace {
thread_local std::int64_t t_pool_allocations = 0;
}
std::int64_t pool_allocations() { return t_pool_allocations; }

Buffer* Buffer::allocate(std::size_t bytes) {
  ++t_pool_allocations;
  int c = class_of(bytes);
  if (c > kMaxClass) throw std::bad_alloc();
  void* raw = nullptr;
  if (!t_pool_gone) {
    Pool& p = pool();
    if (!p.free[c].empty()) {
      raw = p.free[c].back();
      p.free[c].pop_back();
      p.cached -= std::size_t(1) << c;
    }
  }
  if (!raw) {
    raw = std::aligned_alloc(64, std::size_t(1) << c);
    if (!raw) throw std::bad_alloc();
  }
  Buffer* b = new (raw) Buffer();
  b->size_class = c;
  b->bytes = bytes;
  b->data = static_cast<unsigned char*>(raw) + kHeader;
  return b;
}

Buffer* Buffer::external(void* data, std::size_t bytes, void (*release)(void*), void* ctx) {
  Buffer* b = new Buffer();
  b->data = data;
  b->bytes = bytes;
  b->release = release;
  b->ctx = ctx;
  return b;
}

void Buffer::destroy() {
  if (size_class < 0) {
    if (release) release(ctx);
    delete this;
    return;
  }
  int c = size_class;
  this->~Buffer();
  if (t_pool_gone) {
    std::free(this);
    return;
  }
  Pool& p = pool();
  std::size_t sz = std::size_t(1) << c;
  if (p.cached + sz <= kPoolCacheBytes) {
    p.free[c].push_back(this);
    p.cached += sz;
  } else {
    std::free(this);
  }
}

std::size_t pool_cached_bytes() { return t_pool_gone ? 0 : pool().cached; }
void pool_trim() {
  if (!t_pool_gone) pool().trim();
}

Val Val::empty(Shape s, DType d) {
  Buffer* b = Buffer::allocate(std::size_t(s.size()) * itemsize(d));
  return Val(b->data, s, d, b);
}

Val Val::filled(Shape s, DType d, double v) {
  Val out = empty(s, d);
  if (d == DType::f64)
    out.arr<double>().setConstant(v);
  else
    out.arr<float>().setConstant(static_cast<float>(v));
  return out;
}

}  // namespace matgrad
