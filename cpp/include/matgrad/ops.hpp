// SPDX-License-Identifier: MIT
// Creating graph nodes: each call validates shapes, computes the value at once (eager) and
// records edges to its inputs when one of them requires a gradient and grad mode is on.
#pragma once

#include <matgrad/node.hpp>

#include <initializer_list>
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

}  // namespace matgrad
