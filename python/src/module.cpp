// SPDX-License-Identifier: MIT
// matgrad._core: conversions, error mapping and the module entry point.
#include "common.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

namespace matgrad::py_bind {

PyTypeObject* g_tensor_type = nullptr;

namespace {

PyObject* g_linalg_error = nullptr;  // numpy.linalg.LinAlgError (kept for the process)

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    s += (a.ndim() == 1) ? "," : (i + 1 < a.ndim() ? ", " : "");
  }
  return s + ")";
}

std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

// An int argument of a setting (a Python int or NumPy's integers; not bool), as a long long and
// PyLong_AsLongLongAndOverflow's overflow flag (-1, 0 or 1: its range checks are the caller's).
struct IntArg {
  long long value;
  int overflow;
};
IntArg int_arg(py::handle n, const char* op, const char* name) {
  if (!PyIndex_Check(n.ptr()) || PyBool_Check(n.ptr()))
    throw py::type_error(std::string(op) + ": " + name + " must be an int, got " + type_name(n));
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(n.ptr()));
  if (!i) throw py::error_already_set();
  IntArg a{0, 0};
  a.value = PyLong_AsLongLongAndOverflow(i.ptr(), &a.overflow);
  return a;
}

void release_pyobject(void* ctx) {
  py::gil_scoped_acquire gil;
  Py_DECREF(static_cast<PyObject*>(ctx));
}

Shape shape_of(const py::array& a) {
  switch (a.ndim()) {
    case 0:
      return Shape::scalar();
    case 1:
      return Shape::vector(a.shape(0));
    default:
      return Shape::matrix(a.shape(0), a.shape(1));
  }
}

}  // namespace

PyObject* linalg_error_type() { return g_linalg_error; }

namespace {

PyObject* g_anomaly_error = nullptr;  // matgrad.AnomalyError (kept for the process)
std::string g_package_dir;            // matgrad's own files: not the caller's site

// Note [anomaly mode]'s site function: the innermost Python frame outside matgrad's package, as
// "file:line in function" (the eager ops run with the GIL held; without it, no site).
std::string python_site() {
  if (!PyGILState_Check()) return {};
  PyFrameObject* f = PyEval_GetFrame();  // borrowed
  Py_XINCREF(f);
  std::string site;
  while (f) {
    PyCodeObject* code = PyFrame_GetCode(f);  // new reference
    const char* file = PyUnicode_AsUTF8(code->co_filename);
    if (!file) PyErr_Clear();
    if (file && (g_package_dir.empty() || std::strncmp(file, g_package_dir.c_str(), g_package_dir.size()) != 0)) {
      const char* name = PyUnicode_AsUTF8(code->co_name);
      if (!name) PyErr_Clear();
      site = std::string(file) + ":" + std::to_string(PyFrame_GetLineNumber(f)) + " in " + (name ? name : "?");
      Py_DECREF(code);
      Py_DECREF(f);
      return site;
    }
    Py_DECREF(code);
    PyFrameObject* back = PyFrame_GetBack(f);  // new reference
    Py_DECREF(f);
    f = back;
  }
  return site;
}

}  // namespace

PyObject* anomaly_error_type() { return g_anomaly_error; }

double weak_scalar_value(py::handle h, const char* op) {
  double v = PyFloat_CheckExact(h.ptr()) ? PyFloat_AS_DOUBLE(h.ptr()) : PyLong_AsDouble(h.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw TypeError(std::string(op) + ": the integer operand is too large for float64");
  }
  return v;
}

bool parse_dtype(py::handle dtype, DType& out, const char* op) {
  if (dtype.is_none()) return false;
  py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  if (dt.is(numpy_dtype(DType::f64)) || dt.equal(numpy_dtype(DType::f64))) {
    out = DType::f64;
  } else if (dt.equal(numpy_dtype(DType::f32))) {
    out = DType::f32;
  } else {
    throw TypeError(std::string(op) + ": dtype must be float32 or float64, got " + py::str(dt).cast<std::string>());
  }
  return true;
}

NodeRef node_from_data(py::handle h, bool requires_grad, py::handle dtype, const char* op, bool map_always,
                       bool small_ints_f32) {
  DType want = DType::f64;
  bool forced = parse_dtype(dtype, want, op);
  if (is_weak_scalar(h)) {
    NodeRef n = full(Shape::scalar(), want, weak_scalar_value(h, op));
    n->requires_grad = requires_grad;
    return n;
  }
  if (PyUnicode_Check(h.ptr()) || PyBytes_Check(h.ptr()) || h.is_none())
    throw TypeError(std::string(op) + ": expected a number, array or Tensor, got " + type_name(h));
  if (PyComplex_Check(h.ptr()))
    throw TypeError(std::string(op) + ": complex input is not supported (got " + type_name(h) + ")");
  // A list of Tensors that require a gradient would become a constant: the graph would be
  // dropped silently (a zero gradient). Refuse it, naming the ops that keep the graph.
  std::function<bool(py::handle, int)> holds_graph = [&](py::handle x, int depth) {
    if (is_tensor(x)) return tensor_ptr(x)->requires_grad;
    if (depth > 3 || !(PyList_Check(x.ptr()) || PyTuple_Check(x.ptr()))) return false;
    for (py::handle e : x)
      if (holds_graph(e, depth + 1)) return true;
    return false;
  };
  if ((PyList_Check(h.ptr()) || PyTuple_Check(h.ptr())) && holds_graph(h, 0))
    throw TypeError(std::string(op) +
                    ": the list holds Tensors that require grad, whose graph a new array would "
                    "drop; use mg.stack or mg.concatenate (or detach() them)");
  py::array a;
  try {
    a = py::array::ensure(h);
  } catch (py::error_already_set&) {
    a = py::array();
  }
  if (!a) {
    PyErr_Clear();
    throw TypeError(std::string(op) + ": cannot convert " + type_name(h) + " to an array");
  }
  const char kind = a.dtype().kind();
  if (kind == 'c')
    throw TypeError(std::string(op) + ": complex input is not supported (dtype " +
                    py::str(a.dtype()).cast<std::string>() + ", shape " + shape_str(a) + ")");
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw TypeError(std::string(op) + ": expected numbers, got an array of dtype " +
                    py::str(a.dtype()).cast<std::string>() + " with shape " + shape_str(a));
  if (a.ndim() > 2)
    throw ShapeError(std::string(op) + ": arrays of more than 2 dimensions are not supported (got shape " +
                     shape_str(a) + ")");
  if (!forced)
    want = ((kind == 'f' && a.itemsize() <= 4) || (small_ints_f32 && kind != 'f' && a.itemsize() <= 2)) ? DType::f32
                                                                                                        : DType::f64;
  const Shape s = shape_of(a);
  const py::dtype np_want = numpy_dtype(want);
  const bool exact = a.dtype().equal(np_want) && (a.flags() & py::array::c_style) &&
                     (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_);
  if (exact && (!requires_grad || map_always)) {
    // Zero copy: the node maps the array's memory and holds a reference to the array.
    PyObject* owner = a.ptr();
    Py_INCREF(owner);
    Buffer* b = Buffer::external(const_cast<void*>(a.data()), std::size_t(a.nbytes()), release_pyobject, owner);
    return make_leaf_shared(b, b->data, s, want, requires_grad);
  }
  NodeRef n = make_node(kLeaf, s, want);
  n->requires_grad = requires_grad;
  if (exact) {
    std::memcpy(n->data, a.data(), std::size_t(a.nbytes()));
  } else {
    // Let NumPy convert (strides, byte order, ints, bools) straight into the node's storage.
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    py::capsule keep(new NodeRef(n), [](void* p) { delete static_cast<NodeRef*>(p); });
    py::array dst(np_want, shape, n->data, keep);
    py::module_::import("numpy").attr("copyto")(dst, a, py::arg("casting") = "unsafe");
  }
  return n;
}

NodeRef as_node(py::handle h, const char* op, DType weak_dtype) {
  if (is_tensor(h)) return NodeRef(tensor_ptr(h));
  if (is_weak_scalar(h)) return full(Shape::scalar(), weak_dtype, weak_scalar_value(h, op));
  return node_from_data(h, false, py::none(), op);
}

bool is_f32_operand(py::handle h) {
  if (is_tensor(h)) return tensor_ptr(h)->dtype == DType::f32;
  if (is_weak_scalar(h)) return false;
  auto& api = py::detail::npy_api::get();
  PyObject* o = h.ptr();
  py::dtype dt;
  if (api.PyArray_Check_(o)) {
    dt = py::reinterpret_borrow<py::array>(h).dtype();
  } else {
    static PyObject* generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
    if (PyObject_IsInstance(o, generic) != 1) {
      PyErr_Clear();
      return false;
    }
    dt = py::reinterpret_steal<py::dtype>(PyObject_GetAttrString(o, "dtype"));
    if (!dt) throw py::error_already_set();
  }
  return dt.kind() == 'f' && dt.itemsize() <= 4;
}

py::tuple shape_tuple(const Shape& s) {
  switch (s.ndim) {
    case 0:
      return py::tuple();
    case 1:
      return py::make_tuple(s.cols);
    default:
      return py::make_tuple(s.rows, s.cols);
  }
}

py::dtype numpy_dtype(DType d) {
  static py::dtype* f64 = new py::dtype(py::dtype::of<double>());
  static py::dtype* f32 = new py::dtype(py::dtype::of<float>());
  return d == DType::f64 ? *f64 : *f32;
}

namespace {
py::array make_array(DType d, const Shape& s, void* data, py::handle base) {
  std::vector<py::ssize_t> shape, strides;
  const py::ssize_t item = py::ssize_t(itemsize(d));
  if (s.ndim == 1) {
    shape = {s.cols};
    strides = {item};
  } else if (s.ndim == 2) {
    shape = {s.rows, s.cols};
    strides = {s.cols * item, item};
  }
  return py::array(numpy_dtype(d), shape, strides, data, base);
}
}  // namespace

py::array view_of(const NodeRef& n) {
  // The base owns the memory itself: a buffer reference when there is one (the node may later
  // move to other storage, e.g. when a leaf starts requiring grad), else the node (inline data).
  py::capsule base = n->buf ? py::capsule(n->buf, [](void* p) { static_cast<Buffer*>(p)->unref(); })
                            : py::capsule(new NodeRef(n), [](void* p) { delete static_cast<NodeRef*>(p); });
  if (n->buf) n->buf->ref();
  py::array a = make_array(n->dtype, n->shape, n->data, base);
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

}  // namespace matgrad::py_bind

PYBIND11_MODULE(_core, m) {
  using namespace matgrad::py_bind;
  m.doc() = "matgrad's C++ engine (bindings only; use the matgrad package)";
  m.attr("__version__") = MATGRAD_VERSION;
  g_linalg_error = py::object(py::module_::import("numpy.linalg").attr("LinAlgError")).release().ptr();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const matgrad::Error&) {
      set_python_error();
    }
  });
  {
    py::object bases = py::make_tuple(py::handle(PyExc_FloatingPointError), py::handle(PyExc_RuntimeError));
    g_anomaly_error = PyErr_NewExceptionWithDoc(
        "matgrad._core.AnomalyError",
        "AnomalyError(message: str)\n\n"
        "Raised inside mg.detect_anomaly() by the first op whose value or gradient became NaN or Inf: the\n"
        "message names the op, the shapes of its inputs and result and the line of code that called it. A\n"
        "FloatingPointError and a RuntimeError, so either catches it.\n\n"
        "Not differentiable: an exception, outside the graph.",
        bases.ptr(), nullptr);
    if (!g_anomaly_error) throw py::error_already_set();
    Py_INCREF(g_anomaly_error);  // kept for the process (the module holds another reference)
    m.add_object("AnomalyError", py::reinterpret_steal<py::object>(g_anomaly_error));
  }
  matgrad::set_anomaly_site(python_site);
  m.def(
      "_set_anomaly",
      [](bool on, std::string package_dir) {
        const bool prev = matgrad::anomaly_enabled();
        if (!package_dir.empty()) g_package_dir = std::move(package_dir);
        matgrad::set_anomaly_enabled(on);
        return prev;
      },
      py::arg("on"), py::arg("package_dir") = std::string(),
      "Turn anomaly mode on or off on this thread (mg.detect_anomaly); returns the previous setting.");
  m.def("_anomaly_enabled", &matgrad::anomaly_enabled, "Whether anomaly mode is on on this thread.");
  bind_tensor(m);
  bind_entry(m);
  bind_transforms(m);
  bind_compile(m);
  bind_fast(m);
  {
    py::options plain;  // the docstrings give the signature lines (n: int, not pybind11's object)
    plain.disable_function_signatures();
    m.def(
        "set_num_threads",
        [](py::handle n) {
          const auto [v, overflow] = int_arg(n, "set_num_threads", "n");
          if (overflow > 0 || v > 1 << 20)
            throw py::value_error("set_num_threads: n = " + py::str(n).cast<std::string>() + " is too large");
          matgrad::set_num_threads(overflow < 0 ? 0 : static_cast<int>(std::max<long long>(v, -1)));
        },
        py::arg("n"),
        "set_num_threads(n: int) -> None\n\n"
        "Set the threads matgrad's kernels use: n >= 1 (ValueError otherwise; more than the cores is allowed).\n"
        "Matrix products and elementwise functions over long arrays are split between them; small ops\n"
        "always run on the calling thread, whatever their shape. Results are bitwise the same from run to\n"
        "run for a given n, and equal to rounding across counts.\n\n"
        "Not differentiable: a setting outside the graph.");
    m.def(
        "set_cache_limit",
        [](py::handle n) {
          const auto [v, overflow] = int_arg(n, "set_cache_limit", "nbytes");
          if (overflow < 0 || (overflow == 0 && v < 0))
            throw py::value_error("set_cache_limit: nbytes = " + py::str(n).cast<std::string>() + " is negative");
          const std::size_t bytes = overflow > 0 ? ~std::size_t(0) : static_cast<std::size_t>(v);
          return matgrad::set_cache_limit(bytes);
        },
        py::arg("nbytes"),
        "set_cache_limit(nbytes: int) -> int\n\n"
        "Bound the memory each thread keeps for reuse: freed values of more than 128 bytes go to a per-thread\n"
        "cache of at most nbytes (default 256 MiB, or the environment variable MATGRAD_CACHE_LIMIT, e.g.\n"
        "'64M'), beyond which they return to the system; each thread's cache is returned when the thread\n"
        "exits. 0 caches nothing (slower: every large value is a fresh allocation). Applies to every thread:\n"
        "this one's cache shrinks at once, the others' when they next free a value. Returns the previous\n"
        "bound (ValueError when negative, TypeError when not an int).\n\n"
        "Not differentiable: a setting outside the graph.");
    m.def("get_cache_limit", &matgrad::cache_limit,
          "get_cache_limit() -> int\n\n"
          "The bound, in bytes, on the memory each thread keeps for reuse (see set_cache_limit).\n\n"
          "Not differentiable: a setting outside the graph; it takes no arrays.");
    m.def("_cache_limit_env_error", [] { return matgrad::cache_limit_env_error(); });
    m.def("get_num_threads", &matgrad::get_num_threads,
          "get_num_threads() -> int\n\n"
          "The threads matgrad's kernels use: what set_num_threads set, else OMP_NUM_THREADS when set,\n"
          "else the cores this process may run on.\n\n"
          "Not differentiable: a setting outside the graph; it takes no arrays.");
  }
  m.def(
      "_vector_math",
      [](const char* isa) {
        if (isa != nullptr && !matgrad::set_vector_math(isa))
          throw py::value_error(std::string("_vector_math: no kernels for '") + isa + "' here");
        return std::string(matgrad::vector_math());
      },
      py::arg("isa") = py::none(),
      "The vectorised math kernels in use; with isa (avx512, avx2, sse, none, best), use those.");
  m.def(
      "_linalg_backend",
      [](const py::object& use_lapack) {
        if (!use_lapack.is_none()) matgrad::set_linalg_backend(use_lapack.cast<bool>());
        return std::string(matgrad::linalg_backend());
      },
      py::arg("use_lapack") = py::none(),
      "The LAPACK the matrix functions' decompositions call, or 'eigen'; with use_lapack, choose.");
}
