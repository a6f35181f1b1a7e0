// SPDX-License-Identifier: MIT
// The reverse sweep: df/dx_i = sum over children j of (df/dx_j) . (dg_j/dx_i).
#pragma once

#include <matgrad/node.hpp>

#include <vector>

namespace matgrad {

/// The rule of grad, value_and_grad and hessian: the function's output must be a scalar, of
/// shape () or (1, 1) (a ShapeError naming `op` otherwise).
void check_scalar_output(const char* op, const Shape& out);

/// The node a transform differentiates against for an argument x: a fresh node of x's graph
/// when x requires a gradient (so results stay connected to it), else a leaf requiring one over
/// x's value (x itself when nothing else holds it: a constant the caller's array was mapped to).
NodeRef diff_input(const NodeRef& x);

/// argnums as positions among nargs positional arguments (negative ones count from the end);
/// a ShapeError naming `op` for one out of range.
std::vector<int> resolve_argnums(const char* op, const std::vector<long long>& argnums, int nargs);

/// Accumulate df/dleaf into leaf->grad for every leaf with requires_grad and every node with
/// retains_grad. `seed` is the cotangent of `out` (null: ones, and `out` must hold a single
/// element). With create_graph the gradients are graph nodes that can be differentiated again.
/// Such a gradient refers back to its leaf, a reference cycle that lives until the caller resets
/// `x->grad` (as in PyTorch); grad_nodes returns the same graph without storing it.
void backward(const NodeRef& out, const NodeRef& seed = nullptr, bool create_graph = false);
/// How many nodes the last create_graph backward on this thread left in a reference cycle with
/// their own .grad (Note [create_graph cycles]): their gradient's graph holds them, so neither
/// is freed until .grad is reset. 0 after any other backward.
std::size_t backward_cycles();

/// The adjoints d<seed, out>/d inputs[k] as plain values (first order, no graph built). An input
/// the output does not depend on gets zeros.
std::vector<Val> grad_values(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed = nullptr,
                             const char* op = "grad");

/// The same adjoints as graph nodes (create_graph): differentiable again.
std::vector<NodeRef> grad_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs, const NodeRef& seed = nullptr,
                                const char* op = "grad");

/// The Jacobians d out / d inputs[k], each as an (out.size(), inputs[k].size()) matrix of
/// inputs[k]'s dtype (C-order flattening on both sides). Reverse sweeps (one per output element)
/// or forward sweeps (one per input element), whichever are fewer, run in batches
/// (Note [batched sweeps]).
std::vector<Val> jacobian_values(const NodeRef& out, const std::vector<NodeRef>& inputs);

/// Kernel calls of batched sweeps on this thread: one call for a whole batch, or one per member
/// (the generic fallback). For tests: a matmul VJP on a batch must be one call.
struct BatchStats {
  std::int64_t batched_calls = 0;
  std::int64_t per_member_calls = 0;
};
BatchStats batch_stats();

/// The same Jacobians as graph nodes (differentiable again; one sweep per output element).
std::vector<NodeRef> jacobian_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs);

/// The Hessian blocks H[i][j] = d^2 out / d inputs[i] d inputs[j] of a single-element out, each
/// (inputs[i].size(), inputs[j].size()): the gradient recorded as a graph, then differentiated
/// by batched sweeps (jacobian_values).
std::vector<std::vector<Val>> hessian_values(const NodeRef& out, const std::vector<NodeRef>& inputs);

/// The same blocks as graph nodes (differentiable again).
std::vector<std::vector<NodeRef>> hessian_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs);

/// Forward mode: sum_i d out / d inputs[i] . tangents[i], of out's shape. Computed as the VJP of
/// the VJP: the reverse sweep with cotangent u is the linear map u -> J^T u, recorded as a
/// graph, and its VJP with cotangent v is J v.
Val jvp_values(const NodeRef& out, const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& tangents);
/// The same as a graph node (differentiable again: grad of a jvp).
NodeRef jvp_nodes(const NodeRef& out, const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& tangents);

}  // namespace matgrad
