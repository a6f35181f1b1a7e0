// SPDX-License-Identifier: MIT
// matgrad's worker threads, and set_num_threads / get_num_threads.
//
// Note [kernel threads]
// ~~~~~~~~~~~~~~~~~~~~~
// Big kernels (GEMM, elementwise functions over long arrays) cut their work into a fixed number
// of tasks, chosen from the thread count and the size (tasks_for), and run() hands them to a
// pool of persistent workers, the caller working too. Which thread runs a task never changes
// its result, so a kernel's output depends only on the thread count: bitwise the same from run
// to run. Elementwise results do not depend on it at all; a GEMM cut into row (or column)
// blocks may round differently across counts, as Eigen picks its blocking from each block's
// size. Small kernels never reach the pool (the thresholds at the call sites are measured).
//
// One caller at a time uses the workers: another caller (compiled programs replay from several
// threads) runs its tasks itself, one after the other, with the same split, so its results are
// the same. A task that calls run() again runs the inner tasks itself. Workers are started
// when first needed, never stopped (after a job they spin for 200 µs, then sleep on a condition
// variable), and forgotten after a fork(): the child starts its own.
#include "parallel.hpp"

#include <matgrad/api.hpp>
#include <matgrad/error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

namespace matgrad {

namespace parallel {

namespace {

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);  // "4" or "4,2" (OpenMP's nested list): the first
    if (end != env && v >= 1 && v <= 4096) return static_cast<int>(v);
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<int>& count() {
  static std::atomic<int> n{default_threads()};
  return n;
}

thread_local bool t_in_task = false;

constexpr int kSpinMicros = 200;

inline void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class Pool {
 public:
  // Runs the job; false when another caller holds the workers (the caller then runs it alone).
  bool run(int n, int helpers, const std::function<void(int)>& f) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lk(m_);
      while (static_cast<int>(workers_.size()) < helpers) workers_.emplace_back([this] { work(); });
      job_ = &f;
      n_ = n;
      next_.store(0);
      done_.store(0);
      limit_ = helpers;
      joined_ = 0;
      active_ = true;
      error_ = nullptr;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    cv_work_.notify_all();
    tasks();
    // Spin while the workers finish (a sleeping caller is as slow to wake as a worker), then
    // make sure under the lock: a worker joins only under it.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    while (!(in_job_.load(std::memory_order_acquire) == 0 && done_.load(std::memory_order_acquire) == n) &&
           std::chrono::steady_clock::now() < until) {
      for (int k = 0; k < 16; ++k) pause();
    }
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_done_.wait(lk, [this] { return in_job_.load() == 0 && done_.load() == n_; });
      active_ = false;
      job_ = nullptr;
      error = error_;
    }
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  void tasks() {
    const bool was = t_in_task;
    t_in_task = true;
    for (int i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1);
    }
    t_in_task = was;
  }

  void work() {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      // Spin a little before sleeping: waking a sleeping thread costs about 50 µs on the VMs
      // measured, longer than many kernels worth splitting; a program's next big op comes
      // sooner. (With sleeping workers and caller a split 64 x 784 x 256 float32 GEMM took
      // 123 µs, spinning ones 83, one thread 139.)
      lk.unlock();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      while (published_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
        for (int k = 0; k < 64; ++k) pause();
      }
      lk.lock();
      cv_work_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (!active_ || joined_ >= limit_) continue;
      ++joined_;
      in_job_.fetch_add(1);
      lk.unlock();
      tasks();
      in_job_.fetch_sub(1, std::memory_order_release);  // before the lock: a spinning caller sees it now
      lk.lock();
      cv_done_.notify_all();
    }
  }

  std::mutex busy_;  // held by the caller whose job the workers run
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int n_ = 0, limit_ = 0, joined_ = 0;
  std::atomic<int> in_job_{0};  // workers inside tasks(); joins happen under m_
  bool active_ = false;
  std::uint64_t generation_ = 0;
  std::atomic<int> next_{0}, done_{0};
  std::atomic<std::uint64_t> published_{0};  // generation_, for the spinning workers
  std::exception_ptr error_;
};

// The process's pool. Never destroyed (its workers sleep until the process ends); after a fork
// the child's copy has no threads behind it, so the child makes its own.
Pool& pool() {
  static std::mutex m;
  static Pool* p = nullptr;
#if defined(__linux__)
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lk(m);
  if (p == nullptr || owner != getpid()) {
    p = new Pool();  // the parent's pool (after a fork) is left as it is: its mutexes may be held
    owner = getpid();
  }
#else
  std::lock_guard<std::mutex> lk(m);
  if (p == nullptr) p = new Pool();
#endif
  return *p;
}

}  // namespace

int threads() { return count().load(std::memory_order_relaxed); }

int tasks_for(std::int64_t work, std::int64_t min_work) {
  const int t = threads();
  if (t <= 1 || work < min_work) return 1;
  const std::int64_t by_size = std::max<std::int64_t>(1, 2 * work / std::max<std::int64_t>(1, min_work));
  return static_cast<int>(std::min<std::int64_t>(t, by_size));
}

void run(int n, const std::function<void(int)>& f) {
  if (n <= 1 || t_in_task || threads() <= 1 || !pool().run(n, std::min(n, threads()) - 1, f)) {
    for (int i = 0; i < n; ++i) f(i);
  }
}

void chunk(std::int64_t size, int n, int i, std::int64_t align, std::int64_t& begin, std::int64_t& end) {
  auto edge = [&](int j) -> std::int64_t {
    if (j <= 0) return 0;
    if (j >= n) return size;
    const std::int64_t e = size * j / n;
    return std::min(size, (e + align / 2) / align * align);
  };
  begin = edge(i);
  end = std::max(begin, edge(i + 1));
}

}  // namespace parallel

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: n must be at least 1, got " + std::to_string(n));
  parallel::count().store(n, std::memory_order_relaxed);
}

int get_num_threads() { return parallel::threads(); }

}  // namespace matgrad
