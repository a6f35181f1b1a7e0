// SPDX-License-Identifier: MIT
// The engine's side of anomaly mode (Note [anomaly mode] in matgrad/anomaly.hpp): what apply()
// and the reverse sweeps call when it is on.
#pragma once

#include <matgrad/anomaly.hpp>
#include <matgrad/error.hpp>
#include <matgrad/node.hpp>
#include <matgrad/ops.hpp>

#include <string>

namespace matgrad::detail {

/// While alive, apply() records sites but checks nothing (a sweep checks what the VJP gives).
struct AnomalyQuiet {
  AnomalyQuiet() noexcept;
  ~AnomalyQuiet();
  AnomalyQuiet(const AnomalyQuiet&) = delete;
  AnomalyQuiet& operator=(const AnomalyQuiet&) = delete;
};

enum class Finite : int { all = 0, inf = 1, nan = 2 };
Finite classify(const Val& v);

/// apply()'s check of a new node (anomaly mode on): throws AnomalyError for a new NaN or Inf;
/// records where it was made when it keeps its parents.
void anomaly_forward(OpId op, const Val* in, int n, int index_input, const Node& out);
/// A sweep's report: the VJP of n gave input k a cotangent with a NaN or an Inf.
[[noreturn]] void anomaly_backward(const Node& n, int k, const Val& cot, Finite got);

}  // namespace matgrad::detail
