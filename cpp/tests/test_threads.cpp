// SPDX-License-Identifier: MIT
// The kernels' threads (Note [kernel threads] in cpp/src/kernels/parallel.cpp): the count,
// determinism, equality across counts, errors in tasks, nesting and concurrent callers.
#include "test_util.hpp"

#include "../src/kernels/parallel.hpp"

#include <matgrad/matgrad.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using matgrad::Var;
using mgtest::all_close;
using mgtest::Rng;
using mgtest::Tol;

struct Threads {
  explicit Threads(int n) : saved(matgrad::get_num_threads()) { matgrad::set_num_threads(n); }
  ~Threads() { matgrad::set_num_threads(saved); }
  int saved;
};

TEST(Threads, SetAndGet) {
  Threads keep(1);
  EXPECT_EQ(matgrad::get_num_threads(), 1);
  matgrad::set_num_threads(7);  // more than the cores is allowed
  EXPECT_EQ(matgrad::get_num_threads(), 7);
  EXPECT_THROW(matgrad::set_num_threads(0), matgrad::ValueError);
  EXPECT_THROW(matgrad::set_num_threads(-3), matgrad::ValueError);
  EXPECT_EQ(matgrad::get_num_threads(), 7);
}

// value and gradient of sum(sin(A B) * C) through the engine
std::vector<Eigen::MatrixXd> run(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B, const Eigen::MatrixXd& C) {
  Var a = matgrad::variable(A), b = matgrad::variable(B), c = matgrad::constant(C);
  Var f = matgrad::sum(matgrad::mul(matgrad::sin(matgrad::matmul(a, b)), c));
  std::vector<Eigen::MatrixXd> out = matgrad::grad(f, {a, b});
  out.push_back(matgrad::value(f));
  return out;
}

TEST(Threads, BitwiseRepeatableAndEqualToRoundingAcrossCounts) {
  Rng rng(3);
  // sizes around the thresholds: a tall, a wide and a square product, and a long elementwise run
  const int shapes[][3] = {{300, 200, 150}, {20, 300, 700}, {96, 96, 96}, {600, 40, 300}};
  for (const auto& s : shapes) {
    const Eigen::MatrixXd A = rng.matrix(s[0], s[1], -1, 1), B = rng.matrix(s[1], s[2], -1, 1);
    const Eigen::MatrixXd C = rng.matrix(s[0], s[2], -1, 1);
    std::vector<Eigen::MatrixXd> one;
    {
      Threads keep(1);
      one = run(A, B, C);
    }
    for (int n : {2, 3, 5}) {
      Threads keep(n);
      const auto first = run(A, B, C);
      for (int rep = 0; rep < 3; ++rep) {
        const auto again = run(A, B, C);
        for (std::size_t i = 0; i < first.size(); ++i)
          EXPECT_TRUE(again[i] == first[i]) << n << " threads, output " << i;
      }
      for (std::size_t i = 0; i < first.size(); ++i)
        EXPECT_TRUE(all_close(first[i], one[i], Tol{1e-12, 1e-12})) << n << " threads against 1, output " << i;
    }
  }
}

TEST(Threads, ElementwiseResultsDoNotDependOnTheCount) {
  Rng rng(4);
  const Eigen::MatrixXd X = rng.matrix(400, 500, -20, 20);  // 2 * 10^5 elements: split
  Eigen::MatrixXd one;
  {
    Threads keep(1);
    one = matgrad::value(matgrad::tanh(matgrad::constant(X)));
  }
  for (int n : {2, 4}) {
    Threads keep(n);
    EXPECT_TRUE(matgrad::value(matgrad::tanh(matgrad::constant(X))) == one) << n << " threads";
  }
}

TEST(Threads, EveryTaskRunsOnceAndErrorsReachTheCaller) {
  Threads keep(3);
  std::vector<std::atomic<int>> hits(50);
  matgrad::parallel::run(50, [&](int i) { hits[static_cast<std::size_t>(i)].fetch_add(1); });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  std::atomic<int> ran{0};
  EXPECT_THROW(matgrad::parallel::run(8,
                                      [&](int i) {
                                        ran.fetch_add(1);
                                        if (i == 5) throw std::runtime_error("task 5");
                                      }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 8);  // the others still ran: no task is left half done
  // nested: the inner tasks run on the task's own thread
  std::atomic<int> inner{0};
  matgrad::parallel::run(4, [&](int) { matgrad::parallel::run(4, [&](int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 16);
}

TEST(Threads, ConcurrentCallersGetTheSameResults) {
  Threads keep(2);
  Rng rng(5);
  const Eigen::MatrixXd A = rng.matrix(200, 150, -1, 1), B = rng.matrix(150, 180, -1, 1);
  const Eigen::MatrixXd C = rng.matrix(200, 180, -1, 1);
  const auto want = run(A, B, C);
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 5; ++rep) {
        const auto got = run(A, B, C);
        for (std::size_t i = 0; i < got.size(); ++i)
          if (!(got[i] == want[i])) bad.fetch_add(1);
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Threads, ChunksCoverTheRangeOnAlignedBoundaries) {
  for (std::int64_t size : {0, 1, 15, 16, 17, 1000, 65536, 100003})
    for (int n : {1, 2, 3, 7}) {
      std::int64_t prev = 0;
      for (int i = 0; i < n; ++i) {
        std::int64_t b, e;
        matgrad::parallel::chunk(size, n, i, 16, b, e);
        EXPECT_EQ(b, prev) << size << " " << n << " " << i;
        EXPECT_LE(b, e);
        if (i > 0 && b < size) {
          EXPECT_EQ(b % 16, 0);
        }
        prev = e;
      }
      EXPECT_EQ(prev, size);
    }
}

}  // namespace
