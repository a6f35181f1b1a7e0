// SPDX-License-Identifier: MIT
// Vectorised transcendental functions and sqrt over arrays: y[i] = f(x[i]), from glibc's libmvec (Note
// [vectorised math] in vecmath.cpp). The elementwise kernels (ops/elementwise.cpp) call these
// first and fall back to Eigen/libm where apply() returns false.
#pragma once

#include <cstdint>

namespace matgrad::vecmath {

/// The functions with a vector kernel.
enum class Fn : std::uint8_t { sin, cos, tan, tanh, exp, log, log1p, expm1, sqrt, count };

/// y[i] = f(x[i]) for 0 <= i < n; x and y may be the same array (in place), never partly
/// overlapping. False when this build or this CPU has no vector kernel for f: nothing written.
bool apply(Fn f, const double* x, double* y, std::int64_t n);
bool apply(Fn f, const float* x, float* y, std::int64_t n);

/// The kernels in use: "libmvec avx512", "libmvec avx2", "libmvec sse4" or "none".
const char* backend();

/// Use the kernels for `isa`: "avx512", "avx2", "sse", "none" (scalar fallback) or "best" (the
/// default, what the CPU offers). False, and nothing changed, when the CPU or the build has no
/// such kernels. For tests and benchmarks: not safe while other threads run kernels.
bool select(const char* isa);

}  // namespace matgrad::vecmath
