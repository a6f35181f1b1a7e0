// SPDX-License-Identifier: MIT
// The engine's primitives for creating graph nodes. Each call validates shapes, computes the
// value at once (eager) and records edges to its inputs when one of them requires a gradient
// and grad mode is on. The public ops (mg.sin, matgrad::matmul, ...) are entry points
// (matgrad/entry.hpp) built on these; the C++ functions for them are in matgrad/api_ops.hpp,
// generated from the registry.
#pragma once

#include <matgrad/node.hpp>

#include <initializer_list>
#include <utility>
#include <vector>

namespace matgrad {

/// The registry name of an op ("matmul", "sin", "add_s", ...): unique, stable across builds.
const char* op_name(OpId op);
/// The public op it serves, for messages ("add" for add_s, x + 2.0).
const char* op_label(OpId op);
/// The op registered as `name` (a ValueError naming it when there is none).
OpId op_id(const char* name);
/// The number of registered ops (ids are 0 .. op_count() - 1; 0 is the leaf).
int op_count();

/// Create the node op(in...). Inputs must share a dtype (the entry points promote).
NodeRef apply(OpId op, const NodeRef* in, int n, const Attr& attr = {});
inline NodeRef apply(OpId op, std::initializer_list<NodeRef> in, const Attr& attr = {}) {
  return apply(op, in.begin(), static_cast<int>(in.size()), attr);
}

/// x converted to dtype d (x itself when it has that dtype).
NodeRef cast(const NodeRef& x, DType d);
/// x with another shape of the same size (C order).
NodeRef reshape(const NodeRef& x, Shape s);
/// x repeated along its length-1 axes to shape s (NumPy broadcasting).
NodeRef broadcast_to(const NodeRef& x, Shape s);
/// A node equal to x with x as its only parent (a fresh handle to differentiate against).
NodeRef alias(const NodeRef& x);
/// op(x) @ op(y) with transpose flags (no transposed copy is made), float32 with float64
/// giving float64; as numpy.matmul for 1-D operands (a flag on a 1-D operand is ignored).
NodeRef matmul(const NodeRef& x, const NodeRef& y, bool ta, bool tb);

/// Several values as one packed 1-D node (Note [multiple outputs] in node.hpp).
NodeRef pack(const std::vector<NodeRef>& xs);
/// The value of shape s stored at element `offset` of a packed 1-D node.
NodeRef unpack(const NodeRef& packed, std::int64_t offset, Shape s);

/// The constant filled with v.
NodeRef full(Shape s, DType d, double v);
/// The same value as a new constant leaf (recording nothing): values in a buffer share it,
/// small inline values are copied.
NodeRef detach(const Node& n);

/// x[r0:r0+rows, c0:c0+cols] of x's storage, labelled with shape s (s.size() == rows * cols).
NodeRef block(const NodeRef& x, std::int64_t r0, std::int64_t c0, Shape s);
/// out.flat[i] = x.flat[flat_index[i]] with out of shape s; indices are checked.
NodeRef gather(const NodeRef& x, const std::vector<std::int64_t>& flat_index, Shape s);
/// Per row i of logits z (n, c) and targets y (n, c) (one-hot or probabilities):
/// -sum_j y_ij log softmax(z_i)_j, shape (n,). d/dz: g_i (softmax(z_i) sum_j y_ij - y_i).
NodeRef softmax_cross_entropy(const NodeRef& z, const NodeRef& y);
/// Per row i of logits z (n, c) and integer class labels (n of them, each in [0, c)):
/// -log softmax(z_i)[label_i], shape (n,); the labels become one-hot rows of z's dtype. `dtype`
/// names the labels' original type in the error for bad labels.
NodeRef softmax_cross_entropy_labels(const NodeRef& z, const std::vector<std::int64_t>& labels,
                                     const char* dtype = "int64");

/// How many LU factorizations this thread has computed (shared ones count once).
std::int64_t lu_factorizations();
/// How many symmetric eigendecompositions, SVDs and expm scaling-and-squarings this thread has
/// computed (kept ones count once).
std::int64_t spectral_decompositions();

}  // namespace matgrad
