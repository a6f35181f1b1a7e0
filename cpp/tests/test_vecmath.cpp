// SPDX-License-Identifier: MIT
// The vectorised transcendental kernels (cpp/src/kernels/vecmath.cpp), on every instruction
// set this CPU has: accuracy against long double, special values against libm, tails, in place.
#include "../src/kernels/vecmath.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using matgrad::vecmath::Fn;
namespace vm = matgrad::vecmath;

constexpr Fn kFns[] = {Fn::sin, Fn::cos, Fn::tan, Fn::tanh, Fn::exp, Fn::log, Fn::log1p, Fn::expm1, Fn::sqrt};
const char* name(Fn f) {
  static const char* names[] = {"sin", "cos", "tan", "tanh", "exp", "log", "log1p", "expm1", "sqrt"};
  return names[static_cast<int>(f)];
}

long double reference(Fn f, long double x) {
  switch (f) {
    case Fn::sin:
      return std::sin(x);
    case Fn::cos:
      return std::cos(x);
    case Fn::tan:
      return std::tan(x);
    case Fn::tanh:
      return std::tanh(x);
    case Fn::exp:
      return std::exp(x);
    case Fn::log:
      return std::log(x);
    case Fn::log1p:
      return std::log1p(x);
    case Fn::expm1:
      return std::expm1(x);
    case Fn::sqrt:
      return std::sqrt(x);
    default:
      return 0;
  }
}

template <class T>
T libm(Fn f, T x) {
  return static_cast<T>(reference(f, x));  // only its class is compared: NaN, inf, zero, sign
}

// |got - want| in units of the last place of want, rounded to T (subnormals: the smallest).
template <class T>
double ulps(T got, long double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : 1e30;
  const T w = static_cast<T>(want);
  if (std::isinf(w) || std::isinf(got)) return got == w ? 0.0 : 1e30;
  T ulp = std::nextafter(std::fabs(w), std::numeric_limits<T>::infinity()) - std::fabs(w);
  if (!(ulp > 0)) ulp = std::numeric_limits<T>::denorm_min();
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / ulp);
}

// The instruction sets this CPU (and build) has kernels for.
std::vector<std::string> isas() {
  std::vector<std::string> out;
  for (const char* isa : {"avx512", "avx2", "sse"})
    if (vm::select(isa)) out.push_back(isa);
  vm::select("best");
  return out;
}

struct Restore {
  ~Restore() { vm::select("best"); }
};

// Arguments over a wide range (|x| from 2^-40 to 2^40, both signs), dense near the functions'
// zeros and poles (multiples of pi/2), and the edges of the type.
template <class T>
std::vector<T> arguments(Fn f) {
  std::mt19937_64 gen(12345);
  std::uniform_real_distribution<double> expo(-40.0, 40.0), unit(-1.0, 1.0);
  std::vector<T> x;
  for (int i = 0; i < 60000; ++i) {
    const double s = (gen() & 1) ? 1.0 : -1.0;
    x.push_back(static_cast<T>(s * std::exp2(expo(gen))));
  }
  const double half_pi = 1.5707963267948966;
  for (int k = -64; k <= 64; ++k)
    for (int j = 0; j < 20; ++j) x.push_back(static_cast<T>(k * half_pi + unit(gen) * 1e-6));
  for (int i = 0; i < 4000; ++i) x.push_back(static_cast<T>(unit(gen) * 30.0));  // tanh, exp's range
  for (int i = 0; i < 4000; ++i) x.push_back(static_cast<T>(1.0 + unit(gen) * 1e-3));  // log's zero
  const T big = std::numeric_limits<T>::max();
  const T tiny = std::numeric_limits<T>::min();
  const T den = std::numeric_limits<T>::denorm_min();
  for (T v : {T(0), -T(0), den, -den, tiny, -tiny, T(tiny / 3), big, -big, T(1e20), T(-1e20), T(1), T(-1)})
    x.push_back(v);
  if (f == Fn::log1p || f == Fn::expm1)  // near their zero
    for (int i = 0; i < 4000; ++i) x.push_back(static_cast<T>(unit(gen) * std::exp2(-20.0 * (i % 3))));
  if (f == Fn::exp || f == Fn::expm1) {  // around overflow and the subnormal results
    const double lo = std::log(static_cast<double>(den)), hi = std::log(static_cast<double>(big));
    for (int i = 0; i <= 200; ++i) {
      x.push_back(static_cast<T>(lo - 2 + i * 0.05));
      x.push_back(static_cast<T>(hi - 5 + i * 0.05));
    }
  }
  return x;
}

template <class T>
void check_accuracy(const std::string& isa) {
  for (Fn f : kFns) {
    const std::vector<T> x = arguments<T>(f);
    std::vector<T> y(x.size());
    ASSERT_TRUE(vm::apply(f, x.data(), y.data(), static_cast<std::int64_t>(x.size())));
    double worst = 0;
    T at = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double u = ulps<T>(y[i], reference(f, static_cast<long double>(x[i])));
      if (u > worst) {
        worst = u;
        at = x[i];
      }
    }
    EXPECT_LE(worst, f == Fn::sqrt ? 0.5 : 4.0) << isa << " " << name(f) << (sizeof(T) == 8 ? " float64" : " float32")
                                                << ": " << worst << " ulp at x = " << static_cast<double>(at);
  }
}

TEST(VecMath, AccurateToFourUlpOnEveryInstructionSet) {
  Restore restore;
  const auto sets = isas();
  if (sets.empty()) GTEST_SKIP() << "no vector kernels in this build (" << vm::backend() << ")";
  for (const auto& isa : sets) {
    ASSERT_TRUE(vm::select(isa.c_str()));
    check_accuracy<double>(isa);
    check_accuracy<float>(isa);
  }
}

template <class T>
void check_specials(const std::string& isa) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T den = std::numeric_limits<T>::denorm_min();
  const std::vector<T> x = {inf,
                            -inf,
                            nan,
                            -nan,
                            T(0),
                            -T(0),
                            den,
                            -den,
                            std::numeric_limits<T>::min(),
                            std::numeric_limits<T>::max(),
                            -std::numeric_limits<T>::max(),
                            T(-1)};
  for (Fn f : kFns) {
    std::vector<T> y(x.size());
    ASSERT_TRUE(vm::apply(f, x.data(), y.data(), static_cast<std::int64_t>(x.size())));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const T want = libm<T>(f, x[i]);
      const std::string where = isa + " " + name(f) + "(" + std::to_string(static_cast<double>(x[i])) + ")" +
                                (sizeof(T) == 8 ? " float64" : " float32");
      EXPECT_EQ(std::isnan(y[i]), std::isnan(want)) << where << " = " << y[i];
      if (std::isnan(want)) continue;
      EXPECT_EQ(std::isinf(y[i]), std::isinf(want)) << where << " = " << y[i];
      EXPECT_EQ(std::signbit(y[i]), std::signbit(want)) << where << " = " << y[i];
      EXPECT_EQ(y[i] == 0, want == 0) << where << " = " << y[i];
      EXPECT_EQ(std::fpclassify(y[i]) == FP_SUBNORMAL, std::fpclassify(want) == FP_SUBNORMAL) << where << " = " << y[i];
      if (std::isinf(want) || want == 0) {
        EXPECT_EQ(y[i], want) << where;
      }
    }
  }
}

TEST(VecMath, SpecialValuesAsLibm) {
  Restore restore;
  for (const auto& isa : isas()) {
    ASSERT_TRUE(vm::select(isa.c_str()));
    check_specials<double>(isa);
    check_specials<float>(isa);
  }
}

// Every length from 0 to 40 (whole vectors and tails), in place and not: each element gets the
// result it gets alone, and nothing past the end is written.
template <class T>
void check_lengths(const std::string& isa) {
  std::mt19937 gen(7);
  std::uniform_real_distribution<T> u(T(0.01), T(3));
  for (Fn f : kFns) {
    for (int n = 0; n <= 40; ++n) {
      std::vector<T> x(static_cast<std::size_t>(n) + 1), y(static_cast<std::size_t>(n) + 1, T(-7));
      for (auto& v : x) v = u(gen);
      ASSERT_TRUE(vm::apply(f, x.data(), y.data(), n));
      EXPECT_EQ(y[static_cast<std::size_t>(n)], T(-7)) << isa << " " << name(f) << " n=" << n;
      std::vector<T> z(x.begin(), x.end());
      ASSERT_TRUE(vm::apply(f, z.data(), z.data(), n));  // in place
      for (int i = 0; i < n; ++i) {
        T one;
        ASSERT_TRUE(vm::apply(f, &x[static_cast<std::size_t>(i)], &one, 1));
        EXPECT_EQ(y[static_cast<std::size_t>(i)], one) << isa << " " << name(f) << " n=" << n << " i=" << i;
        EXPECT_EQ(z[static_cast<std::size_t>(i)], one) << isa << " " << name(f) << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(VecMath, EveryLengthInPlaceOrNot) {
  Restore restore;
  for (const auto& isa : isas()) {
    ASSERT_TRUE(vm::select(isa.c_str()));
    check_lengths<double>(isa);
    check_lengths<float>(isa);
  }
}

TEST(VecMath, SelectRefusesWhatIsNotThere) {
  Restore restore;
  EXPECT_FALSE(vm::select("avx1024"));
  ASSERT_TRUE(vm::select("none"));
  EXPECT_STREQ(vm::backend(), "none");
  double x = 0.5, y = 0;
  EXPECT_FALSE(vm::apply(Fn::sin, &x, &y, 1));
  EXPECT_EQ(y, 0.0);  // nothing written
  ASSERT_TRUE(vm::select("best"));
}

}  // namespace
