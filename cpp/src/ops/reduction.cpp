// SPDX-License-Identifier: MIT
// Reductions over one axis or all of them (NumPy semantics, no keepdims).
#include "registry.hpp"

#include <string>

namespace matgrad {

namespace {

// The axis as 0 (down the rows), 1 (along each row), or kAxisNone (everything). Vectors and
// scalars reduce to a scalar.
int normalize_axis(const char* op, int axis, const Shape& s) {
  if (axis == kAxisNone) return kAxisNone;
  if (axis < -s.ndim || axis >= s.ndim)
    throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) + " is out of bounds for shape " +
                     s.str());
  if (s.ndim < 2) return kAxisNone;
  return axis < 0 ? axis + 2 : axis;
}

template <const char* Name>
Shape reduce_shape(const Attr& a, const Shape* in, int) {
  int ax = normalize_axis(Name, a.axis, in[0]);
  if (ax == kAxisNone) return Shape::scalar();
  return Shape::vector(ax == 0 ? in[0].cols : in[0].rows);
}

template <class T>
void reduce_sum(const KernelArgs& k, double scale_div) {
  using A = typename Accum<T>::type;
  const Val& x = k.in[0];
  int ax = normalize_axis("sum", k.attr.axis, x.shape());
  T* o = k.out.ptr<T>();
  const A d = A(scale_div);
  if (ax == kAxisNone) {
    o[0] = T(x.arr<T>().template cast<A>().sum() / d);
  } else if (ax == 0) {
    MapMat<T>(o, 1, x.shape().cols) = (x.mat<T>().template cast<A>().colwise().sum() / d).template cast<T>();
  } else {
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(o, x.shape().rows) =
        (x.mat<T>().template cast<A>().rowwise().sum() / d).template cast<T>();
  }
}

std::int64_t reduced_count(const Attr& a, const Shape& s) {
  int ax = normalize_axis("mean", a.axis, s);
  if (ax == kAxisNone) return s.size();
  return ax == 0 ? s.rows : s.cols;
}

template <class T> void fwd_sum(const KernelArgs& k) { reduce_sum<T>(k, 1.0); }
template <class T> void fwd_mean(const KernelArgs& k) {
  reduce_sum<T>(k, double(reduced_count(k.attr, k.in[0].shape())));
}

// The cotangent of a reduction spread back over the reduced axis.
template <class A>
typename A::T expand(A& a, const typename A::T& g, const Attr& attr, const Shape& x) {
  int ax = normalize_axis("sum", attr.axis, x);
  if (ax == 1) return a.broadcast_to(a.reshape(g, Shape::matrix(x.rows, 1)), x);
  return a.broadcast_to(g, x);  // scalar or a (cols,) row
}

// dX = G broadcast back over the summed axis
MG_VJP_FN(vjp_sum) { c.dx[0] = expand(a, c.g, c.node.attr, a.shape(c.in[0])); }

// dX = G / count broadcast back over the averaged axis
MG_VJP_FN(vjp_mean) {
  const Shape& x = a.shape(c.in[0]);
  c.dx[0] = expand(a, a.op(OpId::div_s, {c.g}, a.scalar(double(reduced_count(c.node.attr, x)))), c.node.attr, x);
}

constexpr char kSum[] = "sum";
constexpr char kMean[] = "mean";

}  // namespace

void register_reduction(OpDef* t) {
  OpDef& s = t[static_cast<int>(OpId::sum)];
  s.name = kSum;
  s.shape = reduce_shape<kSum>;
  s.forward = MG_FWD(fwd_sum);
  MG_VJP(s, vjp_sum);
  OpDef& m = t[static_cast<int>(OpId::mean)];
  m.name = kMean;
  m.shape = reduce_shape<kMean>;
  m.forward = MG_FWD(fwd_mean);
  MG_VJP(m, vjp_mean);
}

}  // namespace matgrad
