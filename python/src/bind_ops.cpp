// SPDX-License-Identifier: MIT
// Module-level op functions: mg.sin(x), mg.matmul(a, b), ... (conversion only).
#include "common.hpp"

#include <string>

namespace matgrad::py_bind {

namespace {

const char* bin_name(Bin op) {
  switch (op) {
    case Bin::add:
      return "add";
    case Bin::sub:
      return "sub";
    case Bin::mul:
      return "mul";
    case Bin::div:
      return "div";
    case Bin::pow:
      return "pow";
    case Bin::matmul:
      return "matmul";
    case Bin::maximum:
      return "maximum";
    case Bin::minimum:
      return "minimum";
  }
  return "?";
}

OpId bin_op(Bin op) {
  switch (op) {
    case Bin::add:
      return OpId::add;
    case Bin::sub:
      return OpId::sub;
    case Bin::mul:
      return OpId::mul;
    case Bin::div:
      return OpId::div;
    case Bin::pow:
      return OpId::pow;
    case Bin::maximum:
      return OpId::maximum;
    case Bin::minimum:
      return OpId::minimum;
    case Bin::matmul:
      break;
  }
  return OpId::matmul;
}

}  // namespace

NodeRef binary_fn(Bin op, py::handle x, py::handle y) {
  if (is_tensor(x)) return binop(op, NodeRef(tensor_ptr(x)), y, false);
  if (is_tensor(y)) return binop(op, NodeRef(tensor_ptr(y)), x, true);
  // A weak Python scalar takes the other operand's dtype (NEP 50), whichever side it is on.
  if (is_weak_scalar(x) && !is_weak_scalar(y)) return binop(op, as_node(y, bin_name(op)), x, true);
  return binop(op, as_node(x, bin_name(op)), y, false);
}

NodeRef binop(Bin op, const NodeRef& x, py::handle other, bool reflected) {
  const char* name = bin_name(op);
  if (is_weak_scalar(other) && op != Bin::matmul && op != Bin::maximum && op != Bin::minimum) {
    const double s = weak_scalar_value(other, name);
    switch (op) {
      case Bin::add:
        return scalar_op(OpId::add_s, x, s);
      case Bin::sub:
        return reflected ? scalar_op(OpId::rsub_s, x, s) : scalar_op(OpId::add_s, x, -s);
      case Bin::mul:
        return scalar_op(OpId::mul_s, x, s);
      case Bin::div:
        return reflected ? scalar_op(OpId::rdiv_s, x, s) : scalar_op(OpId::div_s, x, s);
      case Bin::pow:
        return reflected ? scalar_op(OpId::rpow_s, x, s) : scalar_op(OpId::pow_s, x, s);
      default:
        break;
    }
  }
  NodeRef y = as_node(other, name, x->dtype);
  const NodeRef& a = reflected ? y : x;
  const NodeRef& b = reflected ? x : y;
  if (op == Bin::matmul) return matmul(a, b);
  return binary(bin_op(op), a, b);
}

namespace {
// An integer argument (anything with __index__) as long long; huge values raise ValueError.
long long as_integer(py::handle h, const char* op, const char* what, const std::string& range_note = "is out of range") {
  if (PyBool_Check(h.ptr()) || PyFloat_Check(h.ptr()))
    throw TypeError(std::string(op) + ": " + what + " must be an integer, got " + Py_TYPE(h.ptr())->tp_name);
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) {
    PyErr_Clear();
    throw TypeError(std::string(op) + ": " + what + " must be an integer, got " + Py_TYPE(h.ptr())->tp_name);
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow)
    throw ShapeError(std::string(op) + ": " + what + " " + py::str(i).cast<std::string>() + " " + range_note);
  return v;
}
}  // namespace

int parse_axis(py::handle axis, const char* op, const Shape& s) {
  if (axis.is_none()) return kAxisNone;
  const long long v = as_integer(axis, op, "axis", "is out of bounds for shape " + s.str());
  if (v < -s.ndim || v >= s.ndim)
    throw ShapeError(std::string(op) + ": axis " + std::to_string(v) + " is out of bounds for shape " + s.str());
  return static_cast<int>(v);
}

Shape parse_reshape(py::handle shape, const Shape& from) {
  std::vector<long long> dims;
  if (PyLong_Check(shape.ptr())) {
    dims.push_back(as_integer(shape, "reshape", "shape entry", "is out of range (reshaping shape " + from.str() + ")"));
  } else if (py::isinstance<py::sequence>(shape) && !PyUnicode_Check(shape.ptr())) {
    for (py::handle d : shape) dims.push_back(as_integer(d, "reshape", "shape entry", "is out of range (reshaping shape " + from.str() + ")"));
  } else {
    throw TypeError("reshape: shape must be an int or a tuple of ints, got " +
                    std::string(Py_TYPE(shape.ptr())->tp_name));
  }
  std::string req = "(";
  for (std::size_t i = 0; i < dims.size(); ++i)
    req += std::to_string(dims[i]) + (dims.size() == 1 ? "," : (i + 1 < dims.size() ? ", " : ""));
  req += ")";
  if (dims.size() > 2)
    throw ShapeError("reshape: shapes of more than 2 dimensions are not supported (shape " + from.str() +
                     " into " + req + ")");
  long long known = 1;
  int unknown = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && unknown < 0) {
      unknown = int(i);
    } else if (dims[i] < 0 || __builtin_mul_overflow(known, dims[i], &known)) {
      throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
    }
  }
  if (unknown >= 0) {
    if (known == 0 || from.size() % known != 0)
      throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
    dims[unknown] = from.size() / known;
  }
  Shape s;
  if (dims.empty()) s = Shape::scalar();
  else if (dims.size() == 1) s = Shape::vector(dims[0]);
  else s = Shape::matrix(dims[0], dims[1]);
  if (s.size() != from.size())
    throw ShapeError("reshape: cannot reshape array of shape " + from.str() + " into shape " + req);
  return s;
}

void bind_ops(py::module_& m) {
  // The reductions over an axis (None, 0, 1, -1, -2; no keepdims).
  auto reduction = [&m](const char* name, OpId op, const char* doc) {
    m.def(
        name,
        [name, op](py::handle x, py::handle axis) {
          NodeRef n = as_node(x, name);
          return reduce(op, n, parse_axis(axis, name, n->shape));
        },
        py::arg("x"), py::arg("axis") = py::none(), doc);
  };
  reduction("sum", OpId::sum, "Sum over axis (None, 0, 1, -1, -2), no keepdims. d/dx: G broadcast back over the axis");
  reduction("mean", OpId::mean, "Mean over axis (None, 0, 1, -1, -2). d/dx: G / n broadcast back over the axis");
  reduction("logsumexp", OpId::logsumexp,
            "log(sum(exp(x))) over axis, computed stably. d/dx: G softmax(x) along the axis");
  reduction("max", OpId::max,
            "The largest element over axis (NaN if one is). d/dx: G at the maximum; ties split it equally");
  m.def(
      "trace", [](py::handle x) { return trace(as_node(x, "trace")); }, py::arg("x"),
      "np.trace of a 2-D x (the sum of its diagonal). d/dx: G I");
  m.def(
      "dot",
      [](py::handle x, py::handle y) {
        if (is_weak_scalar(x) || is_weak_scalar(y)) return binary_fn(Bin::mul, x, y);
        return dot(as_node(x, "dot"), as_node(y, "dot"));
      },
      py::arg("x"), py::arg("y"),
      "np.dot for 0-D/1-D/2-D (x . y for vectors, matmul otherwise, a 0-D operand multiplies). "
      "d/dx: G y^T, d/dy: x^T G");
  m.def(
      "outer", [](py::handle x, py::handle y) { return outer(as_node(x, "outer"), as_node(y, "outer")); },
      py::arg("x"), py::arg("y"), "np.outer: (x.ravel())_i (y.ravel())_j. d/dx_i: sum_j G_ij y_j, d/dy_j: sum_i G_ij x_i");
  m.def(
      "transpose", [](py::handle x) { return transpose(as_node(x, "transpose")); }, py::arg("x"),
      "x^T (identity for 0-D and 1-D). d/dx: G^T");
  m.def(
      "reshape",
      [](py::handle x, py::handle shape) {
        NodeRef n = as_node(x, "reshape");
        return reshape(n, parse_reshape(shape, n->shape));
      },
      py::arg("x"), py::arg("shape"), "C-order reshape (one -1 allowed). d/dx: reshape(G, x.shape)");

  // ---- matrix calculus ----
  m.def(
      "det", [](py::handle x) { return det(as_node(x, "det")); }, py::arg("x"),
      "det(X) of a square matrix (0 when X is singular). d/dX: G adj(X)^T = G det(X) X^-T");
  m.def(
      "logdet", [](py::handle x) { return logdet(as_node(x, "logdet")); }, py::arg("x"),
      "log|det X| (-inf when X is singular). d/dX: G X^-T");
  m.def(
      "slogdet",
      [](py::handle x) {
        auto r = slogdet(as_node(x, "slogdet"));
        return py::make_tuple(py::reinterpret_steal<py::object>(wrap(r.first)),
                              py::reinterpret_steal<py::object>(wrap(r.second)));
      },
      py::arg("x"), "(sign, log|det X|) as np.linalg.slogdet. d/dX of log|det X|: G X^-T; the sign is constant");
  m.def(
      "inv", [](py::handle x) { return inv(as_node(x, "inv")); }, py::arg("x"),
      "X^-1 (LinAlgError when X is singular). d/dX: -X^-T G X^-T");
  m.def(
      "solve", [](py::handle a, py::handle b) { return solve(as_node(a, "solve"), as_node(b, "solve")); },
      py::arg("a"), py::arg("b"),
      "Z = A^-1 B as np.linalg.solve (b of shape (n,) or (n, k)). d/dB: A^-T G, d/dA: -(A^-T G) Z^T");
  m.def(
      "cholesky", [](py::handle x) { return cholesky(as_node(x, "cholesky")); }, py::arg("x"),
      "The lower L with X = L L^T (the lower triangle of X is read, as NumPy). "
      "d/dX: tril_half(N + N^T), N = L^-T tril_half(L^T tril(G)) L^-1 (the upper triangle gets 0)");
  m.def(
      "norm", [](py::handle x) { return norm(as_node(x, "norm")); }, py::arg("x"),
      "Frobenius norm (2-norm of a vector). d/dX: G X / ||X|| (0 at X = 0)");
  m.def(
      "quad_form",
      [](py::handle x, py::handle b) { return quad_form(as_node(x, "quad_form"), as_node(b, "quad_form")); },
      py::arg("x"), py::arg("B"),
      "x^T B x (x of shape (n,); X^T B X for X of shape (n, k)). d/dx: (B + B^T) x G, d/dB: G x x^T");
  m.def(
      "where",
      [](py::handle mask, py::handle a, py::handle b) {
        NodeRef m = is_tensor(mask) ? NodeRef(tensor_ptr(mask)) : as_node(mask, "where");
        // a weak Python scalar takes the other operand's dtype (NEP 50)
        NodeRef na, nb;
        if (is_weak_scalar(a) && !is_weak_scalar(b)) {
          nb = as_node(b, "where");
          na = as_node(a, "where", nb->dtype);
        } else {
          na = as_node(a, "where");
          nb = as_node(b, "where", na->dtype);
        }
        return where(m, na, nb);
      },
      py::arg("mask"), py::arg("a"), py::arg("b"),
      "a where mask else b (NumPy broadcasting; the mask is not differentiated). "
      "d/da: G where mask, d/db: G elsewhere");
  auto node_list = [](py::handle seq, const char* op) {
    if (is_tensor(seq) || py::isinstance<py::array>(seq) || !py::isinstance<py::sequence>(seq) ||
        PyUnicode_Check(seq.ptr()))
      throw TypeError(std::string(op) + ": expects a list or tuple of arrays, got " + Py_TYPE(seq.ptr())->tp_name);
    std::vector<NodeRef> xs;
    for (py::handle h : seq) xs.push_back(as_node(h, op));
    return xs;
  };
  auto int_axis = [](py::handle axis, const char* op) {
    const long long v = as_integer(axis, op, "axis", "is out of bounds");
    if (v < -3 || v > 2) throw ShapeError(std::string(op) + ": axis " + std::to_string(v) + " is out of bounds");
    return static_cast<int>(v);
  };
  m.def(
      "concatenate",
      [node_list, int_axis](py::handle xs, py::handle axis) {
        return concatenate(node_list(xs, "concatenate"), int_axis(axis, "concatenate"));
      },
      py::arg("xs"), py::arg("axis") = 0,
      "np.concatenate of 1-D or 2-D arrays along axis. d/dx_i: the block of G where x_i was placed");
  m.def(
      "stack",
      [node_list, int_axis](py::handle xs, py::handle axis) {
        return stack(node_list(xs, "stack"), int_axis(axis, "stack"));
      },
      py::arg("xs"), py::arg("axis") = 0,
      "np.stack of 0-D or 1-D arrays of one shape (the result has at most 2 dimensions). "
      "d/dx_i: the slice of G for x_i");
  m.def(
      "diag",
      [](py::handle x, py::handle k) {
        NodeRef n = as_node(x, "diag");
        const long long kk = as_integer(k, "diag", "k", "is out of range for shape " + n->shape.str());
        if (kk > (1LL << 40) || kk < -(1LL << 40))
          throw ShapeError("diag: k " + std::to_string(kk) + " is out of range for shape " + n->shape.str());
        return diag(n, kk);
      },
      py::arg("x"), py::arg("k") = 0,
      "np.diag: the k-th diagonal of a matrix, or the square matrix with vector x on its k-th diagonal. "
      "d/dx: the adjoint placement (diagonal of G, or G's k-th diagonal)");
  m.def("_block", [](py::handle x, std::int64_t r0, std::int64_t c0, std::int64_t rows, std::int64_t cols,
                     py::tuple shape) {
    NodeRef n = as_node(x, "index");
    NodeRef b = block(n, r0, c0, Shape::matrix(rows, cols));
    return reshape(b, parse_reshape(shape, b->shape));
  });
  m.def("_gather", [](py::handle x, py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> idx) {
    NodeRef n = as_node(x, "index");
    const std::int64_t* p = idx.data();
    std::vector<std::int64_t> flat(p, p + idx.size());
    Shape s = idx.ndim() == 0 ? Shape::scalar()
              : idx.ndim() == 1 ? Shape::vector(idx.shape(0))
                                : Shape::matrix(idx.shape(0), idx.shape(1));
    if (idx.ndim() > 2) throw ShapeError("index: the result would have " + std::to_string(idx.ndim()) +
                                         " dimensions (at most 2 are supported)");
    return gather(n, flat, s);
  });
  m.def("_lu_count", &lu_factorizations, "LU factorizations computed by this thread (for tests)");
}

}  // namespace matgrad::py_bind
