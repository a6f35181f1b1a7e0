// SPDX-License-Identifier: MIT
// The batched algebra: the VJPs run on k cotangents at once (jacobian, hessian).
#include "registry.hpp"

#include <matgrad/autodiff.hpp>

#include <cstring>
#include <string>

namespace matgrad {

// Note [batched sweeps]
// A Jacobian needs one reverse sweep per output element (or one forward sweep per input
// element). Run one at a time, every VJP of a sweep is a call per seed: a matmul VJP becomes k
// small GEMMs. The batched sweep runs the same generic VJPs (Note [one VJP, four algebras]) with
// a third algebra whose values are either ordinary values (k == 0: things computed from the
// primal values only, such as X^-1 in the VJP of logdet) or batches of k values of one shape,
// stored as the rows of a (k, size) matrix (everything that depends on the cotangent, which a
// VJP is linear in). Each op runs on a batch in one of four ways (OpDef::batch):
//   unary    elementwise ops see the (k, size) matrix as one value: one kernel call;
//   binary   the batched operand is (k, size), the other is broadcast to the sample shape and
//            seen as a (1, size) row, which the broadcasting kernel spreads over the k rows;
//   matmul   one GEMM whose left operand is a stack of k row blocks: the batch itself, or the
//            members transposed (a batch on the right goes through O_b^T = op(Y_b)^T op(X)^T);
//   generic  one kernel call per batch member (cheap ops and factorization solves).

namespace {

thread_local BatchStats t_stats;

Val sample(const BVal& x, std::int64_t b) {
  if (!x.k) return x.v;
  const std::size_t bytes = std::size_t(x.s.size()) * itemsize(x.v.dtype());
  return Val(static_cast<char*>(x.v.data()) + std::size_t(b) * bytes, x.s, x.v.dtype());
}

void generic_into(const OpDef& d, const BVal* in, int n, const Attr& a, const FactorSlot* factors, std::int64_t k,
                  Shape os, const Val& out) {
  const DType dt = out.dtype();
  const std::size_t ob = std::size_t(os.size()) * itemsize(dt);
  SmallArray<Val> vals(n);
  SmallArray<FactorSlot> fs(n);  // a factorization is shared only by values that are not batched
  for (int i = 0; i < n; ++i) fs[i] = factors && !in[i].k ? factors[i] : FactorSlot{};
  t_stats.per_member_calls += k;
  for (std::int64_t b = 0; b < k; ++b) {
    for (int i = 0; i < n; ++i) vals[i] = sample(in[i], b);
    Val o(static_cast<char*>(out.data()) + std::size_t(b) * ob, os, dt);
    d.forward(KernelArgs{a, vals.p, n, o, fs.p});
  }
}

// Note [matmul of vectors] (linalg.cpp): the 2-D view of each operand.
struct Dims {
  std::int64_t r, c;
};
Dims view_dims(const Shape& s, bool left) {
  if (s.ndim == 1) return left ? Dims{1, s.cols} : Dims{s.cols, 1};
  return {s.rows, s.cols};
}

struct MatmulDims {
  std::int64_t m, q, inner;
  bool ta, tb;
};
MatmulDims matmul_dims(const Shape& xs, const Shape& ys, const Attr& a) {
  const Dims xd = view_dims(xs, true), yd = view_dims(ys, false);
  const bool ta = a.ta && xs.ndim == 2, tb = a.tb && ys.ndim == 2;
  return {ta ? xd.c : xd.r, tb ? yd.r : yd.c, ta ? xd.r : xd.c, ta, tb};
}
// The scratch a batched matmul needs (elements): transposed members, and the product before
// its members are transposed back.
std::int64_t matmul_scratch(const Shape& xs, const Shape& ys, bool left_batched, const Attr& a, std::int64_t k) {
  const MatmulDims d = matmul_dims(xs, ys, a);
  if (left_batched) return d.ta ? k * d.m * d.inner : 0;
  return (!d.tb && d.q > 1 ? k * d.q * d.inner : 0) + k * d.q * d.m;
}

template <class T>
void batched_matmul(const BVal* in, const Attr& a, std::int64_t k, const Val& out, T* scratch) {
  const Dims xd = view_dims(in[0].s, true), yd = view_dims(in[1].s, false);
  const MatmulDims md = matmul_dims(in[0].s, in[1].s, a);
  const bool ta = md.ta, tb = md.tb;
  const std::int64_t m = md.m, q = md.q, inner = md.inner;
  RowMat<T> own;  // the scratch when the caller gives none
  if (!scratch) {
    own.resize(1, std::max<std::int64_t>(matmul_scratch(in[0].s, in[1].s, in[0].k != 0, a, k), 1));
    scratch = own.data();
  }
  // Every case is one GEMM whose left operand is a stack of k row blocks (the shape Eigen's
  // GEMM runs fastest here), with a transpose per member before or after where needed.
  if (in[0].k) {  // O_b = op(X_b) op(Y): stack op(X_b) (m x inner each), O is the stack of O_b
    MapMat<T> Y(in[1].v.ptr<T>(), yd.r, yd.c);
    MapMat<T> O(out.ptr<T>(), k * m, q);
    if (ta) {
      MapMat<T> XT(scratch, k * m, inner);
      for (std::int64_t b = 0; b < k; ++b)
        XT.middleRows(b * m, m) = CMapMat<T>(in[0].v.ptr<T>() + b * inner * m, inner, m).transpose();
    }
    CMapMat<T> Xs(ta ? scratch : in[0].v.ptr<T>(), k * m, inner);
    if (tb)
      O.noalias() = Xs * Y.transpose();
    else
      O.noalias() = Xs * Y;
    return;
  }
  // O_b = op(X) op(Y_b), O_b^T = op(Y_b)^T op(X)^T: stack op(Y_b)^T (q x inner each)
  MapMat<T> X(in[0].v.ptr<T>(), xd.r, xd.c);
  const T* y = in[1].v.ptr<T>();
  T* yt = scratch;
  const bool transpose_y = !tb && q > 1;
  if (transpose_y) {
    MapMat<T> YT(yt, k * q, inner);
    for (std::int64_t b = 0; b < k; ++b) YT.middleRows(b * q, q) = CMapMat<T>(y + b * inner * q, inner, q).transpose();
  }
  CMapMat<T> Ys(transpose_y ? yt : y, k * q, inner);
  MapMat<T> R(scratch + (transpose_y ? k * q * inner : 0), k * q, m);
  if (ta)
    R.noalias() = Ys * X;
  else
    R.noalias() = Ys * X.transpose();
  if (q == 1) {  // the stack of O_b^T rows is the stack of O_b
    MapMat<T>(out.ptr<T>(), k, m) = R;
  } else {
    for (std::int64_t b = 0; b < k; ++b) MapMat<T>(out.ptr<T>() + b * m * q, m, q) = R.middleRows(b * q, q).transpose();
  }
}

// broadcast_to / sum_to / sum over everything on a batch, without a call per member. Each
// member's shape is a scalar, a (1, c) row, an (r, 1) column or the full (r, c); false when the
// pair of shapes is none of those (the generic loop then runs).
template <class T>
bool batched_spread(OpId o, const BVal& x, const Attr& a, std::int64_t k, Shape os, const Val& out) {
  using Acc = typename Accum<T>::type;
  const Shape& is = x.s;
  if (o == ops::broadcast_to) {
    MapMat<T> X(x.v.ptr<T>(), k, is.size());
    MapMat<T> O(out.ptr<T>(), k, os.size());
    if (is.size() == 1)
      O = X.col(0).replicate(1, os.size());
    else if (is.rows == 1 && is.cols == os.cols)  // a row repeated os.rows times
      O = X.replicate(1, os.rows);
    else if (is.cols == 1 && is.rows == os.rows)  // each element repeated os.cols times
      for (std::int64_t b = 0; b < k; ++b)
        for (std::int64_t i = 0; i < os.rows; ++i) O.row(b).segment(i * os.cols, os.cols).setConstant(X(b, i));
    else
      return false;
    return true;
  }
  const bool all = o == ops::sum && a.axis == kAxisNone;
  if (o != ops::sum_to && !all) return false;
  MapMat<T> X(x.v.ptr<T>(), k, is.size());
  MapMat<T> O(out.ptr<T>(), k, os.size());
  if (all || os.size() == 1) {
    O.col(0) = X.template cast<Acc>().rowwise().sum().template cast<T>();
  } else if (is.rows == 0) {  // nothing to sum: (0, n) -> zeros (leftCols would read past X)
    O.setZero();
  } else if (os.rows == 1 && os.cols == is.cols) {  // sum the rows of each member
    Eigen::Matrix<Acc, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> acc = X.leftCols(is.cols).template cast<Acc>();
    for (std::int64_t i = 1; i < is.rows; ++i) acc += X.middleCols(i * is.cols, is.cols).template cast<Acc>();
    O = acc.template cast<T>();
  } else if (os.cols == 1 && os.rows == is.rows) {  // sum each row of each member
    MapMat<T> R(x.v.ptr<T>(), k * is.rows, is.cols);
    MapMat<T>(out.ptr<T>(), k * is.rows, 1) = R.template cast<Acc>().rowwise().sum().template cast<T>();
  } else {
    return false;
  }
  return true;
}

}  // namespace

void run_batched(OpId o, const BVal* in, int n, const Attr& a, const FactorSlot* factors, std::int64_t k,
                 const Shape& os, const Val& out, void* scratch) {
  const OpDef& d = opdef(o);
  int batched = 0;
  for (int i = 0; i < n; ++i) batched += in[i].k != 0;
  const DType dt = out.dtype();
  if (d.batch != BatchKind::generic && !(d.batch == BatchKind::matmul && batched != 1)) ++t_stats.batched_calls;
  switch (d.batch) {
    case BatchKind::unary:
      d.forward(KernelArgs{a, &in[0].v, 1, out, nullptr});
      return;
    case BatchKind::whole: {
      SmallArray<Val> vals(n);
      for (int i = 0; i < n; ++i) vals[i] = in[i].v;
      d.forward(KernelArgs{a, vals.p, n, out, nullptr});
      return;
    }
    case BatchKind::binary: {
      Val ops[2];
      for (int i = 0; i < 2; ++i) ops[i] = in[i].k ? in[i].v : in[i].v.relabel(Shape::matrix(1, os.size()));
      d.forward(KernelArgs{a, ops, 2, out, nullptr});
      return;
    }
    case BatchKind::matmul:
      if (batched == 1) {
        if (dt == DType::f64)
          batched_matmul<double>(in, a, k, out, static_cast<double*>(scratch));
        else
          batched_matmul<float>(in, a, k, out, static_cast<float*>(scratch));
        return;
      }
      break;
    case BatchKind::generic:
      if (n == 1 && (o == ops::broadcast_to || o == ops::sum_to || o == ops::sum)) {
        const bool done = dt == DType::f64 ? batched_spread<double>(o, in[0], a, k, os, out)
                                           : batched_spread<float>(o, in[0], a, k, os, out);
        if (done) {
          ++t_stats.batched_calls;
          return;
        }
      }
      break;
  }
  generic_into(d, in, n, a, factors, k, os, out);
}

std::int64_t batch_scratch_elements(OpId o, const BVal* in, int n, const Attr& a, std::int64_t k) {
  if (opdef(o).batch != BatchKind::matmul || n != 2 || (in[0].k != 0) == (in[1].k != 0)) return 0;
  return matmul_scratch(in[0].s, in[1].s, in[0].k != 0, a, k);
}

BVal BatchAlg::apply(OpId o, const BVal* in, int n, const Attr& a, const FactorSlot* factors) {
  const OpDef& d = opdef(o);
  std::int64_t k = 0;
  for (int i = 0; i < n; ++i)
    if (in[i].k) k = in[i].k;
  if (!k) {
    SmallArray<Val> vals(n);
    for (int i = 0; i < n; ++i) vals[i] = in[i].v;
    Val r = ValueAlg().apply(o, vals.p, n, a, factors);
    return BVal{r, 0, r.shape()};
  }
  SmallArray<Shape> ss(n);
  for (int i = 0; i < n; ++i) ss[i] = in[i].s;
  const Shape os = d.shape(a, ss.p, n);
  const DType dt = d.dtype ? d.dtype(a, nullptr, n) : in[d.index_input == 0 ? 1 : 0].v.dtype();
  Val out = Val::empty(Shape::matrix(k, os.size()), dt);
  if (os.size() == 0) return BVal{out, k, os};  // Note [empty results] in registry.cpp
  if (d.batch == BatchKind::binary) {  // both operands of the output's sample shape first
    BVal ops[2];
    for (int i = 0; i < 2; ++i) {
      ops[i] = in[i];
      if (in[i].s.same_storage(os)) continue;
      Attr ba;
      ba.shape = os;
      ops[i] = in[i].k ? apply(ops::broadcast_to, &in[i], 1, ba) : BVal{ValueAlg().broadcast_to(in[i].v, os), 0, os};
    }
    run_batched(o, ops, 2, a, factors, k, os, out, nullptr);
  } else {
    run_batched(o, in, n, a, factors, k, os, out, nullptr);
  }
  return BVal{out, k, os};
}

BVal BatchAlg::on_node(OpId o, const Node& xn, std::initializer_list<BVal> rest, const Attr& a) {
  const int n = 1 + static_cast<int>(rest.size());
  SmallArray<BVal> in(n);
  SmallArray<FactorSlot> factors(n);
  in[0] = input(xn);
  factors[0] = factor_slot(xn);
  int i = 1;
  for (const BVal& v : rest) in[i++] = v;
  return apply(o, in.p, n, a, factors.p);
}

BatchStats batch_stats() { return t_stats; }

void BatchAlg::accumulate(BVal& slot, BVal&& v) {
  if (!slot) {
    slot = std::move(v);
  } else if (slot.k && slot.k == v.k && slot.v.unique() && slot.s.same_storage(v.s) && slot.v.dtype() == v.v.dtype()) {
    if (slot.v.dtype() == DType::f64)
      slot.v.arr<double>() += v.v.arr<double>();
    else
      slot.v.arr<float>() += v.v.arr<float>();
  } else {
    slot = add(slot, v);
  }
}

}  // namespace matgrad
