// SPDX-License-Identifier: MIT
// Reductions over one axis or all of them (NumPy semantics, no keepdims): sum, mean, logsumexp,
// max and the VJP helper max_weight_axis; the fused softmax cross-entropy and its VJP. The
// public entry points sum, mean, logsumexp and max.
#include "registry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

namespace {

// Ops only this file names.
OpId k_max_weight_axis, k_xent, k_xent_vjp, k_softmax;

// The axis as 0 (down the rows), 1 (along each row), or kAxisNone (everything). Vectors and
// scalars reduce to a scalar.
int normalize_axis(const char* op, int axis, const Shape& s) {
  if (axis == kAxisNone) return kAxisNone;
  if (axis < -s.ndim || axis >= s.ndim)
    throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) + " is out of bounds for shape " + s.str());
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
  c.dx[0] = expand(a, a.op(ops::div_s, {c.g}, a.scalar(double(reduced_count(c.node.attr, x)))), c.node.attr, x);
}

// Apply f(first, count, stride) -> result to every reduced slice of x (row-major storage):
// axis None: one slice of all elements; axis 0: each column; axis 1: each row.
template <class T, class F>
void for_slices(const Val& x, int ax, T* out, F f) {
  const Shape& s = x.shape();
  const T* p = x.ptr<T>();
  if (ax == kAxisNone)
    out[0] = f(p, s.size(), std::int64_t(1));
  else if (ax == 0)
    for (std::int64_t j = 0; j < s.cols; ++j) out[j] = f(p + j, s.rows, s.cols);
  else
    for (std::int64_t i = 0; i < s.rows; ++i) out[i] = f(p + i * s.cols, s.cols, std::int64_t(1));
}

// The largest element of a slice; NaN if one is NaN (as np.max).
template <class T>
T slice_max(const T* p, std::int64_t n, std::int64_t st) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = p[i * st];
    if (std::isnan(v)) return v;
    if (v > m) m = v;
  }
  return m;
}

template <const char* Name>
Shape nonempty_reduce_shape(const Attr& a, const Shape* in, int n) {
  Shape out = reduce_shape<Name>(a, in, n);
  int ax = normalize_axis(Name, a.axis, in[0]);
  const std::int64_t len = ax == kAxisNone ? in[0].size() : (ax == 0 ? in[0].rows : in[0].cols);
  if (len == 0)  // as NumPy, even when the result is empty too (max of (0, 0) along an axis)
    fail_shapes(Name, "has a zero-size axis to reduce (the maximum has no identity)", in, 1);
  return out;
}

// logsumexp: m + log(sum exp(x - m)) with m the slice maximum (-inf for an empty slice or all
// -inf; +inf or NaN when one is)
template <class T> void fwd_logsumexp(const KernelArgs& k) {
  using A = typename Accum<T>::type;
  for_slices<T>(k.in[0], normalize_axis("logsumexp", k.attr.axis, k.in[0].shape()), k.out.ptr<T>(),
                [](const T* p, std::int64_t n, std::int64_t st) {
                  const T m = slice_max(p, n, st);
                  if (!std::isfinite(m)) return m;
                  A acc = 0;
                  for (std::int64_t i = 0; i < n; ++i) acc += std::exp(A(p[i * st]) - A(m));
                  return T(A(m) + std::log(acc));
                });
}
// dX = G softmax(X) along the axis, G spread back over it. Not G exp(X - y): at X = (1e15, 1e15)
// y = 1e15 + log 2 rounds to a multiple of 0.125, and exp(X - y) gives 0.472 for 0.5.
MG_VJP_FN(vjp_logsumexp) {
  const Shape& x = a.shape(c.in[0]);
  const Attr& at = c.node.attr;
  c.dx[0] = a.mul(expand(a, c.g, at, x), a.op(k_softmax, {c.in[0]}, at));
}

// Note [softmax along an axis]
// softmax(X)_i = exp(X_i - m - log sum_j exp(X_j - m)), m the slice maximum: X_i - m is exact for
// the elements that matter and the log-sum lies in [0, log n], so every weight is right to a few
// ulp however large X is. The limits at infinities: a slice whose maximum is +inf or -inf (all
// -inf) splits the weight equally among the elements equal to it ([inf, 0] -> [1, 0], as the
// gradient of logsumexp tends to); a NaN gives NaN. Its VJP: dX = S (G - sum(G S) along the axis).
Shape softmax_shape(const Attr& a, const Shape* in, int) {
  normalize_axis("softmax", a.axis, in[0]);
  return in[0];
}
template <class T> void fwd_softmax(const KernelArgs& k) {
  using A = typename Accum<T>::type;
  const Val& x = k.in[0];
  const Shape& s = x.shape();
  const int ax = normalize_axis("softmax", k.attr.axis, s);
  const T* p = x.ptr<T>();
  T* o = k.out.ptr<T>();
  auto slice = [&](std::int64_t first, std::int64_t n, std::int64_t st) {
    const T m = slice_max(p + first, n, st);
    if (std::isnan(m)) {
      for (std::int64_t i = 0; i < n; ++i) o[first + i * st] = m;
    } else if (std::isinf(m)) {
      std::int64_t ties = 0;
      for (std::int64_t i = 0; i < n; ++i) ties += p[first + i * st] == m;
      for (std::int64_t i = 0; i < n; ++i) o[first + i * st] = p[first + i * st] == m ? T(1) / T(ties) : T(0);
    } else {
      A acc = 0;
      for (std::int64_t i = 0; i < n; ++i) acc += std::exp(A(p[first + i * st]) - A(m));
      const A l = std::log(acc);
      for (std::int64_t i = 0; i < n; ++i) o[first + i * st] = T(std::exp(A(p[first + i * st]) - A(m) - l));
    }
  };
  if (ax == kAxisNone)
    slice(0, s.size(), 1);
  else if (ax == 0)
    for (std::int64_t j = 0; j < s.cols; ++j) slice(j, s.rows, s.cols);
  else
    for (std::int64_t i = 0; i < s.rows; ++i) slice(i * s.cols, s.cols, 1);
}
// dX = S (G - sum(G S) along the axis, spread back), S the output
MG_VJP_FN(vjp_softmax) {
  const Shape& x = a.shape(c.in[0]);
  const Attr& at = c.node.attr;
  c.dx[0] = a.mul(c.out, a.sub(c.g, expand(a, a.op(ops::sum, {a.mul(c.g, c.out)}, at), at, x)));
}

template <class T> void fwd_max(const KernelArgs& k) {
  for_slices<T>(k.in[0], normalize_axis("max", k.attr.axis, k.in[0].shape()), k.out.ptr<T>(), slice_max<T>);
}
// dX = G w, w = (X == max) / (number of ties) along the axis
MG_VJP_FN(vjp_max) {
  const Shape& x = a.shape(c.in[0]);
  auto w = a.op(k_max_weight_axis, {c.in[0], c.out}, c.node.attr);
  c.dx[0] = a.mul(w, expand(a, c.g, c.node.attr, x));
}

// max_weight_axis(x, y): 1 / ties where x equals the slice's maximum y (NaN equals NaN), else 0
Shape max_weight_axis_shape(const Attr&, const Shape* in, int) { return in[0]; }
template <class T> void fwd_max_weight_axis(const KernelArgs& k) {
  const Shape& s = k.in[0].shape();
  const int ax = normalize_axis("max", k.attr.axis, s);
  const T* x = k.in[0].ptr<T>();
  const T* y = k.in[1].ptr<T>();
  T* o = k.out.ptr<T>();
  auto hit = [](T v, T m) { return v == m || (std::isnan(v) && std::isnan(m)); };
  auto slice = [&](std::int64_t first, std::int64_t n, std::int64_t st, T m) {
    std::int64_t ties = 0;
    for (std::int64_t i = 0; i < n; ++i) ties += hit(x[first + i * st], m);
    for (std::int64_t i = 0; i < n; ++i) o[first + i * st] = hit(x[first + i * st], m) ? T(1) / T(ties) : T(0);
  };
  if (ax == kAxisNone)
    slice(0, s.size(), 1, y[0]);
  else if (ax == 0)
    for (std::int64_t j = 0; j < s.cols; ++j) slice(j, s.rows, s.cols, y[j]);
  else
    for (std::int64_t i = 0; i < s.rows; ++i) slice(i * s.cols, s.cols, 1, y[i]);
}

// Note [fused softmax cross-entropy]
// softmax_cross_entropy(Z, Y), Z and Y of shape (n, c): per row i the cross-entropy of softmax(Z_i)
// against the target row Y_i (one-hot or probabilities),
//   l_i = -sum_j Y_ij log softmax(Z_i)_j = sum_j Y_ij ((m_i - Z_ij) + log sum_k exp(Z_ik - m_i)),
// m_i the row maximum: one pass over the row, stable for any logits, and exact for one-hot rows
// whose label has the largest logit (no cancellation of two large logsumexp terms).
// The VJP is one kernel too, softmax_cross_entropy_vjp(Z, Y, G) = G_i (softmax(Z_i) s_i - Y_i),
// s_i = sum_j Y_ij (1 for one-hot rows: softmax - onehot); its own VJP is written with the
// ordinary ops, so second derivatives work as for any op.
constexpr char kXent[] = "softmax_cross_entropy";

Shape xent_shape(const Attr&, const Shape* in, int) {
  if (in[0].ndim != 2 || in[1] != in[0])
    fail_shapes(kXent, "are not logits and targets of one (batch, classes) shape", in, 2);
  if (in[0].cols == 0 && in[0].rows > 0) fail_shapes(kXent, "have no classes", in, 2);
  return Shape::vector(in[0].rows);
}

// Row i's maximum m and log sum_k exp(Z_ik - m) (m non-finite: the sum is not formed, log 1 = 0;
// the callers give such rows, with a logit of +inf or NaN or every logit -inf, a NaN loss and a
// NaN gradient, as PyTorch does, instead of an inf next to a partly NaN gradient).
template <class T, class A>
std::pair<T, A> row_shift_lse(const T* z, std::int64_t c) {
  const T m = slice_max(z, c, std::int64_t(1));
  if (!std::isfinite(m)) return {m, A(0)};
  A acc = 0;
  for (std::int64_t j = 0; j < c; ++j) acc += std::exp(A(z[j]) - A(m));
  return {m, std::log(acc)};
}

template <class T> void fwd_xent(const KernelArgs& k) {
  using A = typename Accum<T>::type;
  const std::int64_t n = k.in[0].shape().rows, c = k.in[0].shape().cols;
  const T* z = k.in[0].ptr<T>();
  const T* y = k.in[1].ptr<T>();
  T* o = k.out.ptr<T>();
  for (std::int64_t i = 0; i < n; ++i, z += c, y += c) {
    const auto [m, lse] = row_shift_lse<T, A>(z, c);
    if (!std::isfinite(m)) {
      o[i] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    A l = 0;
    for (std::int64_t j = 0; j < c; ++j)
      if (y[j] != T(0)) l += A(y[j]) * ((A(m) - A(z[j])) + lse);  // 0 * (m - (-inf)) stays out
    o[i] = T(l);
  }
}

Shape xent_vjp_shape(const Attr&, const Shape* in, int) { return in[0]; }
// softmax_cross_entropy_vjp(Z, Y, G)_ij = G_i (softmax(Z_i)_j s_i - Y_ij), s_i = sum_j Y_ij
template <class T> void fwd_xent_vjp(const KernelArgs& k) {
  using A = typename Accum<T>::type;
  const std::int64_t n = k.in[0].shape().rows, c = k.in[0].shape().cols;
  const T* z = k.in[0].ptr<T>();
  const T* y = k.in[1].ptr<T>();
  const T* g = k.in[2].ptr<T>();
  T* o = k.out.ptr<T>();
  for (std::int64_t i = 0; i < n; ++i, z += c, y += c, o += c) {
    const auto [m, lse] = row_shift_lse<T, A>(z, c);
    if (!std::isfinite(m)) {
      std::fill(o, o + c, std::numeric_limits<T>::quiet_NaN());
      continue;
    }
    A s = 0;
    for (std::int64_t j = 0; j < c; ++j) s += A(y[j]);
    const A gi = A(g[i]);
    for (std::int64_t j = 0; j < c; ++j) o[j] = T(gi * (std::exp((A(z[j]) - A(m)) - lse) * s - A(y[j])));
  }
}

// The attribute of a reduction along each row (axis 1).
Attr along_rows() {
  Attr at;
  at.axis = 1;
  return at;
}
template <class A>
typename A::T row_sum(A& a, const typename A::T& x) {
  return a.op(ops::sum, {x}, along_rows());
}
template <class A>
typename A::T row_lse(A& a, const typename A::T& z) {
  return a.op(ops::logsumexp, {z}, along_rows());
}
// (n,) -> (n, 1), broadcasting against (n, c) in the binary ops
template <class A>
typename A::T column(A& a, const typename A::T& v) {
  return a.reshape(v, Shape::matrix(a.shape(v).size(), 1));
}

// dZ = G_i (softmax(Z_i) s_i - Y_i) (one kernel), dY = G_i (logsumexp(Z_i) - Z_i) = -G_i log softmax(Z_i)
MG_VJP_FN(vjp_xent) {
  if (c.needs[0]) c.dx[0] = a.op(k_xent_vjp, {c.in[0], c.in[1], c.g});
  if (c.needs[1]) c.dx[1] = a.mul(column(a, c.g), a.sub(column(a, row_lse(a, c.in[0])), c.in[0]));
}

// With P = softmax(Z), s = rowsum(Y), D = the op's output and H its cotangent (all per row i):
//   dZ = G s P * (H - rowsum(H P)),  dY = G (rowsum(H P) - H),  dG = rowsum(H * (P s - Y))
MG_VJP_FN(vjp_xent_vjp) {
  const auto& z = c.in[0];
  const auto& y = c.in[1];
  const auto& g = c.in[2];
  const auto p = a.exp(a.sub(z, column(a, row_lse(a, z))));  // softmax(Z) row by row
  const auto hp = column(a, row_sum(a, a.mul(c.g, p)));
  const auto s = c.needs[0] || c.needs[2] ? row_sum(a, y) : typename A::T();
  if (c.needs[0]) c.dx[0] = a.mul(a.mul(column(a, a.mul(g, s)), p), a.sub(c.g, hp));
  if (c.needs[1]) c.dx[1] = a.mul(column(a, g), a.sub(hp, c.g));
  if (c.needs[2]) c.dx[2] = row_sum(a, a.mul(c.g, a.sub(a.mul(p, column(a, s)), y)));
}

constexpr char kSum[] = "sum";
constexpr char kMean[] = "mean";
constexpr char kLogsumexp[] = "logsumexp";
constexpr char kMax[] = "max";

}  // namespace

void register_reduction() {
  // A reduction over an axis with its public function mg.<name>(x, axis=None).
  auto reduction = [](OpId* id, const char* name, ShapeFn shape, ForwardFn fwd, VjpFns vjp, const char* what,
                      const char* rule) -> EntryPoint& {
    OpDef& d = define(id, name, 1, shape, fwd).reads(kAttrAxis).vjp(vjp);
    return define_entry(name, "reductions", front_axis, id_of(d),
                        {{"x", ParamKind::operand}, {"axis", ParamKind::axis, "None"}})
        .doc(what,
             "`x` of any shape. `axis=None` -> `()`; for `x` of shape `(m, n)`, `axis=0` (or -2) -> `(n,)` and "
             "`axis=1` (or -1) -> `(m,)`; a 0-D or 1-D `x` reduces to `()`. No keepdims.",
             rule);
  };
  reduction(&ops::sum, kSum, reduce_shape<kSum>, MG_FWD(fwd_sum), MG_VJP(vjp_sum),
            "The sum of the elements of `x` over `axis`.", "d/dx: `G` broadcast back over the summed axis.")
      .method = "sum";
  reduction(nullptr, kMean, reduce_shape<kMean>, MG_FWD(fwd_mean), MG_VJP(vjp_mean),
            "The mean of the elements of `x` over `axis`.",
            "d/dx: `G / n` broadcast back over the averaged axis, `n` the number of elements averaged.")
      .method = "mean";
  reduction(&ops::logsumexp, kLogsumexp, reduce_shape<kLogsumexp>, MG_FWD(fwd_logsumexp), MG_VJP(vjp_logsumexp),
            "`log(sum(exp(x)))` over `axis`, computed stably as `m + log(sum(exp(x - m)))` with `m` the maximum.",
            "d/dx: `G * exp(x - y)` with `y` the output: `G` times the softmax of `x` along the axis (`G` and `y` "
            "broadcast back over it).");
  reduction(nullptr, kMax, nonempty_reduce_shape<kMax>, MG_FWD(fwd_max), MG_VJP(vjp_max),
            "The largest element of `x` over `axis` (NaN if one is; a zero-size axis raises ValueError).",
            "d/dx: `G * w` with `w = [x == max] / (number of ties)` along the axis: the adjoint goes to the "
            "maximum; ties split it equally.");
  define(&k_xent, kXent, 2, xent_shape, MG_FWD(fwd_xent)).vjp(MG_VJP(vjp_xent));
  define(&k_xent_vjp, "softmax_cross_entropy_vjp", 3, xent_vjp_shape, MG_FWD(fwd_xent_vjp)).vjp(MG_VJP(vjp_xent_vjp));
  define(&k_softmax, "softmax", 1, softmax_shape, MG_FWD(fwd_softmax)).reads(kAttrAxis).vjp(MG_VJP(vjp_softmax));
  // zero derivative: no VJP
  define(&k_max_weight_axis, "max_weight_axis", 2, max_weight_axis_shape, MG_FWD(fwd_max_weight_axis)).reads(kAttrAxis);
}

NodeRef softmax_cross_entropy(const NodeRef& z, const NodeRef& y) { return apply_promoted(k_xent, z, y); }

NodeRef softmax_cross_entropy_labels(const NodeRef& z, const std::vector<std::int64_t>& labels, const char* dtype) {
  const Shape& s = z->shape;
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  if (s.ndim == 2 && s.cols == 0)  // no classes: the op's own error (an empty result for 0 rows)
    return softmax_cross_entropy(z, full(s, z->dtype, 0.0));
  bool ok = s.ndim == 2 && n == s.rows;
  for (std::int64_t i = 0; ok && i < n; ++i) ok = labels[i] >= 0 && labels[i] < s.cols;
  if (!ok)
    throw ShapeError(std::string(kXent) + ": labels must be " + std::to_string(s.ndim == 2 ? s.rows : 0) +
                     " integers in [0, " + std::to_string(s.ndim == 2 ? s.cols : 0) + "), got shape (" +
                     std::to_string(n) + ",) dtype " + dtype + " for logits of shape " + s.str());
  NodeRef onehot = full(s, z->dtype, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    if (z->dtype == DType::f64)
      static_cast<double*>(onehot->data)[i * s.cols + labels[i]] = 1.0;
    else
      static_cast<float*>(onehot->data)[i * s.cols + labels[i]] = 1.0f;
  }
  return softmax_cross_entropy(z, onehot);
}

}  // namespace matgrad
