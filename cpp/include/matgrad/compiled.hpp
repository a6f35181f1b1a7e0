// SPDX-License-Identifier: MIT
// matgrad::compile: a function of some variables, recorded once and replayed (the C++ face of
// Python's mg.compile; matgrad/program.hpp has the programs themselves).
//
//   matgrad::Var x = matgrad::variable(Eigen::MatrixXd::Random(3, 1));
//   matgrad::Var f = matgrad::sum(matgrad::sin(x) * x);
//   matgrad::Compiled cf = matgrad::compile({x}, {f});
//   auto [v, g] = cf.value_and_grad({Eigen::MatrixXd::Ones(3, 1)});   // no graph is built
#pragma once

#include <matgrad/api.hpp>
#include <matgrad/program.hpp>

#include <Eigen/Core>

#include <memory>
#include <utility>
#include <vector>

namespace matgrad {

/// What a compiled function can replay.
enum class Transform : std::uint8_t {
  value,           ///< the outputs
  value_and_grad,  ///< the single one-element output and its gradient w.r.t. inputs[argnums]
  jacobian,        ///< d output / d inputs[argnums], each (output.size, input.size)
  hessian,         ///< the blocks d2 output / d inputs[i] d inputs[j] of the one-element output
};

/// A function of `inputs` recorded once (matgrad::compile) and replayed on new input values.
/// compile() copies the graph behind the outputs, so the Compiled object shares no node, buffer
/// or count with the caller's variables: it may be copied to, called from and destroyed in any
/// thread, and several threads may call one object at once. Each transform's program (for each
/// argnums) is built at its first call and cached; later calls only replay it.
///
/// Inputs are given one per compiled input, in its storage shape: rows x cols for a matrix, a
/// row or a column for a 1-D variable, 1 x 1 for a 0-D one. Results are float64 matrices of
/// the outputs' storage shapes (as matgrad::grad gives them); run() is the zero-copy form on
/// Vals of the traced dtypes. argnums defaults to every input.
class Compiled {
 public:
  Compiled(const std::vector<Var>& inputs, const std::vector<Var>& outputs);

  std::size_t num_inputs() const;
  std::size_t num_outputs() const;

  /// The outputs at `xs`.
  std::vector<Eigen::MatrixXd> operator()(const std::vector<Eigen::MatrixXd>& xs) const;
  /// Gradients of the single one-element output w.r.t. each of inputs[argnums].
  std::vector<Eigen::MatrixXd> grad(const std::vector<Eigen::MatrixXd>& xs, const std::vector<int>& argnums = {}) const;
  /// The single one-element output's value and its gradients.
  std::pair<double, std::vector<Eigen::MatrixXd>> value_and_grad(const std::vector<Eigen::MatrixXd>& xs,
                                                                 const std::vector<int>& argnums = {}) const;
  /// d output / d inputs[a] for each a in argnums, each (output.size, inputs[a].size) (C order).
  std::vector<Eigen::MatrixXd> jacobian(const std::vector<Eigen::MatrixXd>& xs,
                                        const std::vector<int>& argnums = {}) const;
  /// Hessian blocks H[i][j] = d2 output / d inputs[argnums[i]] d inputs[argnums[j]].
  std::vector<std::vector<Eigen::MatrixXd>> hessian(const std::vector<Eigen::MatrixXd>& xs,
                                                    const std::vector<int>& argnums = {}) const;

  /// The program of a transform, built now if it was not yet (for printing, saving, run()).
  const Program& program(Transform t = Transform::value, const std::vector<int>& argnums = {}) const;
  /// Zero-copy replay: inputs of the traced shapes and dtypes, results as Program::run gives
  /// them (for value_and_grad the value first, then the gradients; for hessian the blocks row
  /// by row).
  std::vector<Val> run(const std::vector<Val>& xs, Transform t = Transform::value,
                       const std::vector<int>& argnums = {}) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::vector<Val> inputs_of(const std::vector<Eigen::MatrixXd>& xs) const;
};

/// Compile the function from `inputs` (variables: leaves that require a gradient) to `outputs`
/// as the graph behind the outputs computes it. Every other leaf is a constant, its value
/// captured now. Throws ValueError for an input that is null, not a leaf, given twice or does
/// not require a gradient (nothing that depends on it was recorded).
Compiled compile(const std::vector<Var>& inputs, const std::vector<Var>& outputs);

namespace detail {
inline std::vector<Var> as_outputs(Var v) { return {std::move(v)}; }
inline std::vector<Var> as_outputs(std::vector<Var> v) { return v; }
}  // namespace detail

/// Trace `f` (taking a const std::vector<Var>&, returning a Var or a std::vector<Var>) once on
/// variables holding `examples`, with tracing on, and compile it. Unlike compiling a graph
/// built beforehand, values f computes from its inputs by ops without a derivative
/// (comparisons, argmax, a no-grad region) are recorded too, so they are recomputed at each
/// call instead of kept from the example (Note [tracing]). Use this form when f has such ops.
template <class F>
Compiled compile(const std::vector<Eigen::MatrixXd>& examples, F&& f) {
  std::vector<Var> xs;
  for (const Eigen::MatrixXd& m : examples) {
    Var v = variable(m);
    v->traced = true;
    xs.push_back(v);
  }
  std::vector<Var> outs;
  {
    TraceMode trace;
    outs = detail::as_outputs(f(static_cast<const std::vector<Var>&>(xs)));
  }
  return Compiled(xs, outs);
}

}  // namespace matgrad
