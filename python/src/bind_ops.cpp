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

// Docstrings: pybind11 puts the signature first; then what the op computes, its shapes, and
// its derivative rule with G the adjoint of the output (the VJPs in cpp/src/ops/*.cpp).
#define MGDOC_REDUCTION_SHAPES                                                                          \
  "Shapes: `x` of any shape. `axis=None` -> `()`; for `x` of shape `(m, n)`, `axis=0` (or -2) -> `(n,)` " \
  "and `axis=1` (or -1) -> `(m,)`; a 0-D or 1-D `x` reduces to `()`. No keepdims.\n\n"

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
  reduction("sum", OpId::sum,
            "The sum of the elements of `x` over `axis`.\n\n" MGDOC_REDUCTION_SHAPES
            "d/dx: `G` broadcast back over the summed axis.");
  reduction("mean", OpId::mean,
            "The mean of the elements of `x` over `axis`.\n\n" MGDOC_REDUCTION_SHAPES
            "d/dx: `G / n` broadcast back over the averaged axis, `n` the number of elements averaged.");
  reduction("logsumexp", OpId::logsumexp,
            "`log(sum(exp(x)))` over `axis`, computed stably as `m + log(sum(exp(x - m)))` with `m` the maximum.\n\n"
            MGDOC_REDUCTION_SHAPES
            "d/dx: `G * exp(x - y)` with `y` the output: `G` times the softmax of `x` along the axis (`G` and `y` "
            "broadcast back over it).");
  reduction("max", OpId::max,
            "The largest element of `x` over `axis` (NaN if one is; a zero-size axis raises ValueError).\n\n"
            MGDOC_REDUCTION_SHAPES
            "d/dx: `G * w` with `w = [x == max] / (number of ties)` along the axis: the adjoint goes to the "
            "maximum; ties split it equally.");
  m.def(
      "trace", [](py::handle x) { return trace(as_node(x, "trace")); }, py::arg("x"),
      "`np.trace(x)`: the sum of the main diagonal of a matrix.\n\n"
      "Shapes: `(m, n)` (square or not) -> `()`; other ranks raise ValueError.\n\n"
      "d/dx: `G I`, `I` the `(m, n)` identity (ones on the main diagonal, zeros elsewhere).");
  m.def(
      "dot",
      [](py::handle x, py::handle y) {
        if (is_weak_scalar(x) || is_weak_scalar(y)) return binary_fn(Bin::mul, x, y);
        return dot(as_node(x, "dot"), as_node(y, "dot"));
      },
      py::arg("x"), py::arg("y"),
      "`np.dot(x, y)` for 0-D, 1-D and 2-D operands: the inner product of vectors, `matmul` otherwise.\n\n"
      "Shapes: `(k,), (k,) -> ()`; `(m, k), (k,) -> (m,)`; `(k,), (k, n) -> (n,)`; `(m, k), (k, n) -> (m, n)`. "
      "A 0-D operand multiplies elementwise (as `mul`: the other operand's shape).\n\n"
      "d/dx: `G y^T`, d/dy: `x^T G` (as `matmul`); with a 0-D operand as `mul`: d/dx: `G * y`, d/dy: `G * x`, "
      "each summed back to its input's shape.");
  m.def(
      "outer", [](py::handle x, py::handle y) { return outer(as_node(x, "outer"), as_node(y, "outer")); },
      py::arg("x"), py::arg("y"),
      "`np.outer(x, y)`: `out[i, j] = x.ravel()[i] * y.ravel()[j]`.\n\n"
      "Shapes: `x` and `y` of any shape, flattened -> `(x.size, y.size)`.\n\n"
      "d/dx: `G @ y.ravel()` (`sum_j G[i, j] y[j]`) reshaped to x's shape; d/dy: `G^T @ x.ravel()` "
      "(`sum_i G[i, j] x[i]`) reshaped to y's shape.");
  m.def(
      "transpose", [](py::handle x) { return transpose(as_node(x, "transpose")); }, py::arg("x"),
      "`x^T`, rows and columns swapped (a 0-D or 1-D `x` is returned as is, as NumPy).\n\n"
      "Shapes: `(m, n) -> (n, m)`; `()` and `(n,)` unchanged.\n\n"
      "d/dx: `G^T`");
  m.def(
      "reshape",
      [](py::handle x, py::handle shape) {
        NodeRef n = as_node(x, "reshape");
        return reshape(n, parse_reshape(shape, n->shape));
      },
      py::arg("x"), py::arg("shape"),
      "`x` with a new shape, in C order (as `numpy.reshape`).\n\n"
      "Shapes: `shape` is an int or a tuple of at most 2 ints, one of which may be -1 (inferred); the number of "
      "elements must not change -> `shape`.\n\n"
      "d/dx: `reshape(G, x.shape)`");

  // ---- matrix calculus ----
  m.def(
      "det", [](py::handle x) { return det(as_node(x, "det")); }, py::arg("x"),
      "`det(X)` of a square matrix, from a partial-pivoting LU (0 when X is singular, no error).\n\n"
      "Shapes: `(n, n) -> ()`.\n\n"
      "d/dX: `G adj(X)^T`, which is `G det(X) X^-T` when X is invertible and stays finite when it is not.");
  m.def(
      "logdet", [](py::handle x) { return logdet(as_node(x, "logdet")); }, py::arg("x"),
      "`log|det X|` of a square matrix (`-inf` when X is singular; the sign is dropped, see `slogdet`).\n\n"
      "Shapes: `(n, n) -> ()`.\n\n"
      "d/dX: `G X^-T`");
  m.def(
      "slogdet",
      [](py::handle x) {
        auto r = slogdet(as_node(x, "slogdet"));
        return py::make_tuple(py::reinterpret_steal<py::object>(wrap(r.first)),
                              py::reinterpret_steal<py::object>(wrap(r.second)));
      },
      py::arg("x"),
      "`(sign, log|det X|)` of a square matrix, as `np.linalg.slogdet` (`(0, -inf)` when X is singular).\n\n"
      "Shapes: `(n, n)` -> a tuple of two `()` Tensors.\n\n"
      "d/dX: `G_2 X^-T` with `G_2` the adjoint of `log|det X|`; the sign is piecewise constant and passes no "
      "gradient.");
  m.def(
      "inv", [](py::handle x) { return inv(as_node(x, "inv")); }, py::arg("x"),
      "`X^-1` of a square matrix (numpy.linalg.LinAlgError when X is singular).\n\n"
      "Shapes: `(n, n) -> (n, n)`.\n\n"
      "d/dX: `-Y^T G Y^T` with `Y = X^-1`, i.e. `-X^-T G X^-T`.");
  m.def(
      "solve", [](py::handle a, py::handle b) { return solve(as_node(a, "solve"), as_node(b, "solve")); },
      py::arg("a"), py::arg("b"),
      "`Z = A^-1 B`, the solution of `A Z = B`, as `np.linalg.solve` (numpy.linalg.LinAlgError when A is "
      "singular).\n\n"
      "Shapes: `a` of shape `(n, n)`, `b` of shape `(n,)` or `(n, k)` -> `b`'s shape.\n\n"
      "d/db: `A^-T G`, d/da: `-(A^-T G) Z^T` (a 1-D `b`, `G` and `Z` taken as `(n, 1)` columns).");
  m.def(
      "cholesky", [](py::handle x) { return cholesky(as_node(x, "cholesky")); }, py::arg("x"),
      "The lower-triangular `L` with `X = L L^T`. Only the lower triangle of X is read, as NumPy; "
      "numpy.linalg.LinAlgError when X is not positive definite.\n\n"
      "Shapes: `(n, n) -> (n, n)`.\n\n"
      "d/dX: `tril_half(N + N^T)` with `N = L^-T tril_half(L^T tril(G)) L^-1`, where `tril` keeps the lower "
      "triangle and `tril_half` also halves the diagonal; the upper triangle of X gets 0.");
  m.def(
      "norm", [](py::handle x) { return norm(as_node(x, "norm")); }, py::arg("x"),
      "The Frobenius norm `sqrt(sum(X^2))` (the 2-norm of a vector, `|x|` of a number).\n\n"
      "Shapes: `x` of any shape -> `()`.\n\n"
      "d/dX: `G X / ||X||` (0 at `X = 0`)");
  m.def(
      "quad_form",
      [](py::handle x, py::handle b) { return quad_form(as_node(x, "quad_form"), as_node(b, "quad_form")); },
      py::arg("x"), py::arg("B"),
      "The quadratic form `x^T B x` as one op (`X^T B X` for a matrix X).\n\n"
      "Shapes: `B` of shape `(n, n)`; `x` of shape `(n,)` -> `()`; `X` of shape `(n, k)` -> `(k, k)`.\n\n"
      "d/dx: `B X G^T + B^T X G` (`(B + B^T) x G` for a 1-D x), d/dB: `X G X^T` (`G x x^T` for a 1-D x).");
  m.def(
      "_softmax_cross_entropy",
      [](py::handle z, py::handle y) {
        constexpr const char* kName = "softmax_cross_entropy";
        NodeRef nz = as_node(z, kName);
        if (py::isinstance<py::array>(y)) {
          const auto arr = py::reinterpret_borrow<py::array>(y);
          const char kind = arr.dtype().kind();
          if (arr.ndim() == 1 && (kind == 'i' || kind == 'u')) {
            // integer class labels: their one-hot rows, built here (conversion, no graph)
            const Shape& s = nz->shape;
            if (s.ndim == 2 && s.cols == 0)  // no classes: the op's own error (an empty result for 0 rows)
              return softmax_cross_entropy(nz, make_leaf(Val::filled(s, nz->dtype, 0.0), false));
            const auto lab = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(y);
            const std::int64_t n = arr.shape(0);
            bool ok = s.ndim == 2 && n == s.rows && lab;
            const std::int64_t* l = ok ? lab.data() : nullptr;
            for (std::int64_t i = 0; ok && i < n; ++i) ok = l[i] >= 0 && l[i] < s.cols;
            if (!ok)
              throw py::value_error(std::string(kName) + ": labels must be " + std::to_string(s.ndim == 2 ? s.rows : 0) +
                                    " integers in [0, " + std::to_string(s.ndim == 2 ? s.cols : 0) + "), got shape (" +
                                    std::to_string(n) + ",) dtype " + std::string(py::str(arr.dtype())) +
                                    " for logits of shape " + s.str());
            Val onehot = Val::filled(s, nz->dtype, 0.0);
            for (std::int64_t i = 0; i < n; ++i) {
              if (nz->dtype == DType::f64)
                onehot.ptr<double>()[i * s.cols + l[i]] = 1.0;
              else
                onehot.ptr<float>()[i * s.cols + l[i]] = 1.0f;
            }
            return softmax_cross_entropy(nz, make_leaf(onehot, false));
          }
        }
        return softmax_cross_entropy(nz, as_node(y, kName, nz->dtype));
      },
      py::arg("logits"), py::arg("targets"),
      "Per row i: `-sum_j Y_ij log softmax(Z_i)_j`, one fused op (mg.nn.softmax_cross_entropy's core).\n\n"
      "Shapes: logits `Z` of shape `(n, c)`; targets `Y` of shape `(n, c)`, or `(n,)` integer class labels "
      "(their one-hot rows, in the logits' dtype) -> `(n,)`, in the promoted dtype of the two (NumPy's rules).\n\n"
      "d/dZ: `G_i (softmax(Z_i) sum_j Y_ij - Y_i)` (softmax - onehot for one-hot rows), "
      "d/dY: `-G_i log softmax(Z_i)`.");
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
      "`a` where `mask` is true, else `b`, as `np.where` (nonzero and NaN mask entries are true).\n\n"
      "Shapes: `mask`, `a` and `b` broadcast together as in NumPy (at most 2-D) -> the broadcast shape; a Python "
      "number takes the other operand's dtype.\n\n"
      "d/da: `G` where mask, 0 elsewhere; d/db: `G` where not mask, 0 elsewhere (each summed back to its input's "
      "shape). The mask is a constant: no gradient flows to it.");
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
      "`np.concatenate(xs, axis)`: arrays joined along an existing axis (float64 if any is float64).\n\n"
      "Shapes: `(n_i,)` along axis 0 (or -1) -> `(sum n_i,)`; `(m_i, n)` along axis 0 (or -2) -> `(sum m_i, n)`; "
      "`(m, n_i)` along axis 1 (or -1) -> `(m, sum n_i)`. 0-D arrays raise ValueError (use `stack`).\n\n"
      "d/dx_i: the block of `G` where `xs[i]` was placed.");
  m.def(
      "stack",
      [node_list, int_axis](py::handle xs, py::handle axis) {
        return stack(node_list(xs, "stack"), int_axis(axis, "stack"));
      },
      py::arg("xs"), py::arg("axis") = 0,
      "`np.stack(xs, axis)`: arrays of one shape joined along a new axis (results of at most 2 dimensions).\n\n"
      "Shapes: N arrays of shape `()` -> `(N,)`; N arrays of shape `(k,)` -> `(N, k)` at axis 0, `(k, N)` at "
      "axis 1 (or -1).\n\n"
      "d/dx_i: the slice of `G` for `xs[i]` (row i at axis 0, column i at axis 1).");
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
      "`np.diag(x, k)` both ways: the k-th diagonal of a matrix, or the square matrix with the vector x on its "
      "k-th diagonal (k > 0 above the main diagonal, k < 0 below).\n\n"
      "Shapes: `(m, n)` -> `(d,)`, d the length of the k-th diagonal; `(n,)` -> `(n + |k|, n + |k|)`.\n\n"
      "d/dx: for a matrix x, `G` placed on the k-th diagonal of zeros of x's shape; for a vector x, the k-th "
      "diagonal of `G`.");
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
