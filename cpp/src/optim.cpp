// SPDX-License-Identifier: MIT
// In-place optimiser updates: one pass over each parameter, no temporaries (mg.optim's steps).
#include <matgrad/optim.hpp>

#include <matgrad/error.hpp>
#include <matgrad/ops.hpp>

#include <cmath>
#include <cstring>
#include <string>

namespace matgrad {

void require_leaf(const Node& n, const char* op) {
  if (!n.is_leaf())
    throw GraphError(std::string(op) + ": only leaves can be updated in place (this tensor is the result of '" +
                     op_label(n.op) + "')");
}

void own_storage(Node& n) {
  if (!n.buf || (n.buf->size_class >= 0 && n.buf->rc == 1)) return;
  const std::size_t bytes = std::size_t(n.shape.size()) * itemsize(n.dtype);
  Buffer* old = n.buf;
  void* src = n.data;
  if (bytes <= Node::kInlineBytes) {
    std::memcpy(n.inline_data, src, bytes);
    n.data = n.inline_data;
    n.buf = nullptr;
  } else {
    Buffer* b = Buffer::allocate(bytes);
    b->ref();
    std::memcpy(b->data, src, bytes);
    n.buf = b;
    n.data = b->data;
  }
  old->unref();
}

void prepare_in_place(Node& n, const char* op) {
  require_leaf(n, op);
  own_storage(n);
  n.factor.reset();
  n.epoch = g_inplace_writes.fetch_add(1, std::memory_order_relaxed) + 1;  // Note [in-place writes]
}

void assign(Node& x, const NodeRef& values, const char* op) {
  require_leaf(x, op);
  NodeRef v = cast(values, x.dtype);
  if (v->shape != x.shape)
    throw ShapeError(std::string(op) + ": values of shape " + v->shape.str() + " do not match the tensor's shape " +
                     x.shape.str());
  prepare_in_place(x, op);
  std::memmove(x.data, v->data, std::size_t(x.shape.size()) * itemsize(x.dtype));
}

namespace {

void check_like(const Node& x, const Val& v, const char* op, const char* what) {
  if (v.shape() != x.shape)
    throw ShapeError(std::string(op) + ": " + what + " of shape " + v.shape().str() +
                     " does not match the parameter's shape " + x.shape.str());
  if (v.dtype() != x.dtype)
    throw TypeError(std::string(op) + ": " + what + " is " + dtype_name(v.dtype()) + ", the parameter " +
                    dtype_name(x.dtype));
}

template <class T>
void adam_kernel(T* x, const T* g, T* m, T* v, std::int64_t n, double lr, double b1, double b2, double eps,
                 std::int64_t t) {
  const T tb1 = T(b1), tb2 = T(b2), ob1 = T(1 - b1), ob2 = T(1 - b2);
  const T c1 = T(1 - std::pow(b1, double(t))), c2 = T(1 - std::pow(b2, double(t)));
  const T tlr = T(lr), teps = T(eps);
  for (std::int64_t i = 0; i < n; ++i) {
    m[i] = tb1 * m[i] + ob1 * g[i];
    v[i] = tb2 * v[i] + ob2 * g[i] * g[i];
    x[i] = x[i] - tlr * (m[i] / c1) / (std::sqrt(v[i] / c2) + teps);
  }
}

template <class T>
void sgd_kernel(T* x, const T* g, T* buf, std::int64_t n, double lr, double momentum, double wd) {
  const T tlr = T(lr), tmu = T(momentum), twd = T(wd);
  for (std::int64_t i = 0; i < n; ++i) {
    T d = wd != 0.0 ? g[i] + twd * x[i] : g[i];
    if (buf) d = buf[i] = tmu * buf[i] + d;
    x[i] = x[i] - tlr * d;
  }
}

}  // namespace

void adam_update(Node& x, const Val& g, const Val& m, const Val& v, double lr, double b1, double b2, double eps,
                 std::int64_t t) {
  constexpr const char* op = "Adam";
  check_like(x, g, op, "the gradient");
  check_like(x, m, op, "the first moment");
  check_like(x, v, op, "the second moment");
  if (t < 1) throw ShapeError(std::string(op) + ": the step count must be >= 1, got " + std::to_string(t));
  prepare_in_place(x, op);
  const std::int64_t n = x.shape.size();
  if (x.dtype == DType::f64)
    adam_kernel(static_cast<double*>(x.data), g.ptr<double>(), m.ptr<double>(), v.ptr<double>(), n, lr, b1, b2, eps, t);
  else
    adam_kernel(static_cast<float*>(x.data), g.ptr<float>(), m.ptr<float>(), v.ptr<float>(), n, lr, b1, b2, eps, t);
}

void sgd_update(Node& x, const Val& g, const Val& buf, double lr, double momentum, double weight_decay) {
  constexpr const char* op = "SGD";
  check_like(x, g, op, "the gradient");
  if (buf) check_like(x, buf, op, "the momentum buffer");
  prepare_in_place(x, op);
  const std::int64_t n = x.shape.size();
  if (x.dtype == DType::f64)
    sgd_kernel(static_cast<double*>(x.data), g.ptr<double>(), buf ? buf.ptr<double>() : nullptr, n, lr, momentum,
               weight_decay);
  else
    sgd_kernel(static_cast<float*>(x.data), g.ptr<float>(), buf ? buf.ptr<float>() : nullptr, n, lr, momentum,
               weight_decay);
}

}  // namespace matgrad
