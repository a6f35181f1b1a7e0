// SPDX-License-Identifier: MIT
// Creating graph nodes: each call validates shapes, computes the value at once (eager) and
// records edges to its inputs when one of them requires a gradient and grad mode is on.
#pragma once

#include <matgrad/node.hpp>

#include <initializer_list>
#include <utility>
#include <vector>

namespace matgrad {

/// The registry name of an op ("matmul", "sin", ...).
const char* op_name(OpId op);

/// Create the node op(in...). Inputs must share a dtype (the helpers below promote).
NodeRef apply(OpId op, const NodeRef* in, int n, const Attr& attr = {});
inline NodeRef apply(OpId op, std::initializer_list<NodeRef> in, const Attr& attr = {}) {
  return apply(op, in.begin(), static_cast<int>(in.size()), attr);
}

/// Unary ops (elementwise).
NodeRef unary(OpId op, const NodeRef& x);
/// Binary elementwise ops with NumPy broadcasting and dtype promotion (float32 with float64
/// gives float64).
NodeRef binary(OpId op, const NodeRef& x, const NodeRef& y);
/// x op s for a weak Python-style scalar s (the result keeps x's dtype). `op` is one of
/// add_s, mul_s, div_s, rsub_s (s - x), rdiv_s (s / x), pow_s (x ** s), rpow_s (s ** x).
NodeRef scalar_op(OpId op, const NodeRef& x, double s);

/// A reduction op (sum, mean, logsumexp, max) over axis (kAxisNone: everything).
NodeRef reduce(OpId op, const NodeRef& x, int axis = kAxisNone);
NodeRef sum(const NodeRef& x, int axis = kAxisNone);
NodeRef mean(const NodeRef& x, int axis = kAxisNone);
NodeRef matmul(const NodeRef& x, const NodeRef& y, bool ta = false, bool tb = false);
/// np.trace of a 2-D x: the sum of its diagonal.
NodeRef trace(const NodeRef& x);
/// np.dot for 0-D/1-D/2-D operands (a 0-D operand multiplies elementwise).
NodeRef dot(const NodeRef& x, const NodeRef& y);
/// np.outer: flatten both, then x_i y_j.
NodeRef outer(const NodeRef& x, const NodeRef& y);
NodeRef transpose(const NodeRef& x);
NodeRef reshape(const NodeRef& x, Shape s);
NodeRef cast(const NodeRef& x, DType d);
NodeRef broadcast_to(const NodeRef& x, Shape s);
/// A node equal to x with x as its only parent (a fresh handle to differentiate against).
NodeRef alias(const NodeRef& x);

/// Several values as one packed 1-D node (Note [multiple outputs] in node.hpp).
NodeRef pack(const std::vector<NodeRef>& xs);
/// The value of shape s stored at element `offset` of a packed 1-D node.
NodeRef unpack(const NodeRef& packed, std::int64_t offset, Shape s);

/// The constant filled with v.
NodeRef full(Shape s, DType d, double v);

// ---- matrix calculus (issue 3) ----
/// det, log|det|, (sign, log|det|), inverse and solve of one matrix node share one LU
/// (Note [shared factorizations] in ops/linalg.cpp).
NodeRef det(const NodeRef& x);
NodeRef logdet(const NodeRef& x);
/// (sign, log|det x|) as two unpack nodes of one slogdet node.
std::pair<NodeRef, NodeRef> slogdet(const NodeRef& x);
NodeRef inv(const NodeRef& x);
/// np.linalg.solve: a (n, n), b (n,) or (n, k).
NodeRef solve(const NodeRef& a, const NodeRef& b);
/// The lower Cholesky factor (the lower triangle of x is read, as NumPy).
NodeRef cholesky(const NodeRef& x);
/// Frobenius norm (2-norm of a vector).
NodeRef norm(const NodeRef& x);
/// x^T B x (x (n,): a scalar; x (n, k): the (k, k) matrix x^T B x).
NodeRef quad_form(const NodeRef& x, const NodeRef& b);
NodeRef logsumexp(const NodeRef& x, int axis = kAxisNone);
NodeRef max(const NodeRef& x, int axis = kAxisNone);
/// Per row i of logits z (n, c) and targets y (n, c) (one-hot or probabilities):
/// -sum_j y_ij log softmax(z_i)_j, shape (n,). d/dz: g_i (softmax(z_i) sum_j y_ij - y_i).
NodeRef softmax_cross_entropy(const NodeRef& z, const NodeRef& y);
/// a where mask != 0, else b (broadcasting all three; the mask is not differentiated).
NodeRef where(const NodeRef& mask, const NodeRef& a, const NodeRef& b);
NodeRef concatenate(const std::vector<NodeRef>& xs, int axis = 0);
/// np.stack of 0-D or 1-D operands of one shape (axis 0 or 1 / -1 for 1-D).
NodeRef stack(const std::vector<NodeRef>& xs, int axis = 0);
/// np.diag: the k-th diagonal of a matrix, or the matrix with vector x on its k-th diagonal.
NodeRef diag(const NodeRef& x, std::int64_t k = 0);
/// x[r0:r0+rows, c0:c0+cols] of x's storage, labelled with shape s (s.size() == rows * cols).
NodeRef block(const NodeRef& x, std::int64_t r0, std::int64_t c0, Shape s);
/// out.flat[i] = x.flat[flat_index[i]] with out of shape s; indices are checked.
NodeRef gather(const NodeRef& x, const std::vector<std::int64_t>& flat_index, Shape s);

/// How many LU factorizations this thread has computed (shared ones count once).
std::int64_t lu_factorizations();

}  // namespace matgrad
