// SPDX-License-Identifier: MIT
#include <matgrad/value.hpp>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

namespace detail {

// Note [memory at thread exit]
// A thread's buffer cache and node free list are freed by their thread_local destructors, but
// glibc keeps freed blocks in its arenas until trimmed: 8 threads that each filled a 256 MiB
// cache left 250-350 MB resident after they ended. This object is constructed before the cache
// and the free list (their constructors make it), so it is destroyed after both, and then
// gives the freed memory back.
thread_local bool t_trim_at_exit = false;  // the cache held 1 MiB or more when the thread ended
struct TrimAtExit {
  ~TrimAtExit() {
#if defined(__GLIBC__)
    if (t_trim_at_exit) malloc_trim(0);  // walks every arena: not for threads that cached little
#endif
  }
};

void trim_at_thread_exit() { thread_local TrimAtExit t; }

}  // namespace detail

namespace {

constexpr std::size_t kHeader = 64;  // Buffer header, padded so data stays 64-byte aligned
constexpr int kMinClass = 8;         // 256 bytes
constexpr int kMaxClass = 40;
constexpr std::size_t kDefaultCacheLimit = std::size_t(256) << 20;

// The bound on each thread's free lists (Note [buffers and the pool]): MATGRAD_CACHE_LIMIT when
// it parses, else 256 MiB, until set_cache_limit.
std::string& env_error() {
  static std::string e;
  return e;
}
std::size_t initial_cache_limit() {
  const char* env = std::getenv("MATGRAD_CACHE_LIMIT");
  if (!env) return kDefaultCacheLimit;
  std::size_t v = 0;
  if (parse_byte_size(env, v)) return v;
  env_error() = std::string("MATGRAD_CACHE_LIMIT=") + env +
                " is not a size (bytes, or a number with K, M or G for KiB, MiB, GiB); the default 256 MiB is used";
  return kDefaultCacheLimit;
}
std::atomic<std::size_t>& cache_limit_ref() {
  static std::atomic<std::size_t> limit{initial_cache_limit()};
  return limit;
}

static_assert(sizeof(Buffer) <= kHeader, "Buffer header must fit its padding");

thread_local bool t_pool_gone = false;  // set when this thread's pool has been destroyed

struct Pool {
  std::vector<void*> free[kMaxClass + 1];
  std::size_t cached = 0;
  Pool() { detail::trim_at_thread_exit(); }  // constructed first, destroyed after the pool
  ~Pool() {  // the thread exits: its cache goes back to the system
    if (cached >= (std::size_t(1) << 20)) detail::t_trim_at_exit = true;
    trim();
    t_pool_gone = true;
  }
  void trim() { trim_to(0); }
  /// Free cached buffers, largest first, until at most `limit` bytes stay.
  void trim_to(std::size_t limit) {
    for (int c = kMaxClass; c >= 0 && cached > limit; --c) {
      while (!free[c].empty() && cached > limit) {
        std::free(free[c].back());
        free[c].pop_back();
        cached -= std::size_t(1) << c;
      }
      if (free[c].empty()) std::vector<void*>().swap(free[c]);
    }
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
  const std::size_t limit = cache_limit_ref().load(std::memory_order_relaxed);
  if (p.cached + sz <= limit) {
    p.free[c].push_back(this);
    p.cached += sz;
  } else {
    std::free(this);
    if (p.cached > limit) p.trim_to(limit);  // the limit was lowered since these were cached
  }
}

bool parse_byte_size(const char* text, std::size_t& out) {
  if (!text) return false;
  const char* p = text;
  while (std::isspace(static_cast<unsigned char>(*p))) ++p;
  if (!std::isdigit(static_cast<unsigned char>(*p))) return false;
  unsigned long long v = 0;
  for (; std::isdigit(static_cast<unsigned char>(*p)); ++p) {
    const unsigned d = static_cast<unsigned>(*p - '0');
    if (v > (~0ULL - d) / 10) return false;
    v = v * 10 + d;
  }
  while (std::isspace(static_cast<unsigned char>(*p))) ++p;
  int shift = 0;
  switch (std::toupper(static_cast<unsigned char>(*p))) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    default:
      break;
  }
  if (shift) {
    ++p;
    if (*p == 'i' || *p == 'I') ++p;
    if (*p == 'b' || *p == 'B') ++p;
  } else if (*p == 'b' || *p == 'B') {
    ++p;
  }
  while (std::isspace(static_cast<unsigned char>(*p))) ++p;
  if (*p != '\0') return false;
  if (shift && v > (~0ULL >> shift)) return false;
  out = static_cast<std::size_t>(v << shift);
  return true;
}

std::size_t cache_limit() { return cache_limit_ref().load(std::memory_order_relaxed); }
std::size_t set_cache_limit(std::size_t bytes) {
  const std::size_t prev = cache_limit_ref().exchange(bytes, std::memory_order_relaxed);
  if (!t_pool_gone && pool().cached > bytes) pool().trim_to(bytes);
  return prev;
}
const std::string& cache_limit_env_error() {
  cache_limit_ref();
  return env_error();
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
