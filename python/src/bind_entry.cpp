// SPDX-License-Identifier: MIT
// The public ops in Python, from the entry points (Note [entry points] in matgrad/entry.hpp):
// for each one a module function mg.<name>, and where it says so a Tensor method, property or
// operator. This file only converts: Python arguments to Args by parameter kind, the results
// to Tensors, C++ errors to Python's.
#include "common.hpp"

#include <cstring>
#include <deque>
#include <string>

namespace matgrad::py_bind {

namespace {

// An integer argument (anything with __index__) as long long; `overflow` is set for values
// beyond int64 (the caller names them in its error).
long long index_value(py::handle h, const char* op, const char* what, bool& overflow) {
  if (PyBool_Check(h.ptr()) || PyFloat_Check(h.ptr()))
    throw TypeError(std::string(op) + ": " + what + " must be an integer, got " + Py_TYPE(h.ptr())->tp_name);
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) {
    PyErr_Clear();
    throw TypeError(std::string(op) + ": " + what + " must be an integer, got " + Py_TYPE(h.ptr())->tp_name);
  }
  int of = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &of);
  overflow = of != 0;
  return v;
}

std::string py_str(py::handle h) { return py::str(h).cast<std::string>(); }

// What an out-of-range integer is out of: "bounds for shape (2, 3)" when the first operand is
// known (an axis), else "range".
std::string out_of(const Arg* done, int i, const char* kind) {
  if (i > 0 && done[0].kind == Arg::kNode)
    return std::string("is out of ") + kind + " for shape " + done[0].node->shape.str();
  return std::string("is out of ") + kind;
}

// Where converted lists and shapes live until the call returns (an Arg refers to them).
struct ArgStore {
  std::vector<NodeRef> nodes[4];
  std::vector<std::int64_t> ints[4];
};

// An operand: a Tensor, a weak Python number (kept as a number), or data to convert. Bool and
// small integer arrays become float32 when one of the call's other operands (`peers`) is float32,
// as in NumPy 2 (int8 + float32 -> float32; int8 + 1.0 -> float64).
// True for a NumPy bool or integer array of at most 16 bits: the only data whose conversion
// depends on the other operands (peers are scanned for nothing else).
bool small_int_array(py::handle h) {
  if (!py::detail::npy_api::get().PyArray_Check_(h.ptr())) return false;
  const py::dtype dt = py::reinterpret_borrow<py::array>(h).dtype();
  const char k = dt.kind();
  return (k == 'b' || k == 'i' || k == 'u') && dt.itemsize() <= 2;
}
bool any_f32(PyObject* const* peers, int npeers) {
  for (int i = 0; i < npeers; ++i)
    if (peers[i] && is_f32_operand(peers[i])) return true;
  return false;
}
Arg operand_arg(py::handle h, const char* op, PyObject* const* peers = nullptr, int npeers = 0) {
  if (is_weak_scalar(h)) return Arg(weak_scalar_value(h, op));
  if (is_tensor(h)) return Arg(NodeRef(tensor_ptr(h)));
  const bool f32 = npeers > 0 && small_int_array(h) && any_f32(peers, npeers);
  return Arg(node_from_data(h, false, py::none(), op, false, f32));
}

Arg convert(py::handle h, const Param& p, const char* op, const Arg* done, int i, ArgStore& store,
            PyObject* const* given, int ngiven) {
  switch (p.kind) {
    case ParamKind::operand:
      return operand_arg(h, op, given, ngiven);
    case ParamKind::operands: {
      if (is_tensor(h) || py::isinstance<py::array>(h) || !py::isinstance<py::sequence>(h) || PyUnicode_Check(h.ptr()))
        throw TypeError(std::string(op) + ": expects a list or tuple of arrays, got " + Py_TYPE(h.ptr())->tp_name);
      std::vector<NodeRef>& xs = store.nodes[i];
      std::vector<PyObject*> items;
      for (py::handle x : h) items.push_back(x.ptr());
      // NumPy 2: [int8, float32] concatenates to float32 (one scan of the list, not one per item)
      const bool f32 = any_f32(items.data(), int(items.size()));
      for (PyObject* x : items)
        xs.push_back(f32 && small_int_array(x) ? node_from_data(x, false, py::none(), op, false, true)
                                               : as_node(x, op));
      return Arg::list(xs);
    }
    case ParamKind::axis:
    case ParamKind::integer: {
      if (p.kind == ParamKind::axis && h.is_none()) return Arg();
      bool overflow = false;
      const long long v = index_value(h, op, p.name, overflow);
      if (overflow)
        throw ShapeError(std::string(op) + ": " + p.name + " " + py_str(h) + " " +
                         out_of(done, i, p.kind == ParamKind::axis ? "bounds" : "range"));
      return Arg::integer(v);
    }
    case ParamKind::shape: {
      std::vector<std::int64_t>& dims = store.ints[i];
      const std::string range = i > 0 && done[0].kind == Arg::kNode
                                    ? "is out of range (reshaping shape " + done[0].node->shape.str() + ")"
                                    : "is out of range";
      auto entry = [&](py::handle d) {
        bool overflow = false;
        const long long v = index_value(d, op, "shape entry", overflow);
        if (overflow) throw ShapeError(std::string(op) + ": shape entry " + py_str(d) + " " + range);
        dims.push_back(v);
      };
      if (PyLong_Check(h.ptr()) || (!py::isinstance<py::sequence>(h) && PyObject_HasAttrString(h.ptr(), "__index__")))
        entry(h);
      else if (py::isinstance<py::sequence>(h) && !PyUnicode_Check(h.ptr()))
        for (py::handle d : h) entry(d);
      else
        throw TypeError(std::string(op) + ": shape must be an int or a tuple of ints, got " +
                        Py_TYPE(h.ptr())->tp_name);
      return Arg::dims(dims);
    }
  }
  throw TypeError(std::string(op) + ": unknown parameter kind");
}

PyObject* results(const EntryPoint& e, Results&& r) {
  if (!e.tuple) return wrap(std::move(r.v[0]));
  PyObject* t = PyTuple_New(r.n);
  if (!t) return nullptr;
  for (int i = 0; i < r.n; ++i) {
    PyObject* w = wrap(std::move(r.v[i]));
    if (!w) {
      Py_DECREF(t);
      return nullptr;
    }
    PyTuple_SET_ITEM(t, i, w);
  }
  return t;
}

// The entry point behind a function or method: its self, a small object holding the pointer.
struct EntryHandle {
  PyObject_HEAD const EntryPoint* e;
};
PyTypeObject* g_handle_type = nullptr;
PyType_Slot g_handle_slots[] = {{Py_tp_doc, const_cast<char*>("The entry point of a public op (internal).")},
                                {0, nullptr}};
PyType_Spec g_handle_spec = {"matgrad._core._EntryHandle", sizeof(EntryHandle), 0, Py_TPFLAGS_DEFAULT, g_handle_slots};

PyObject* handle_of(const EntryPoint* e) {
  auto* h = reinterpret_cast<EntryHandle*>(PyType_GenericAlloc(g_handle_type, 0));
  if (!h) throw py::error_already_set();
  h->e = e;
  return reinterpret_cast<PyObject*>(h);
}
const EntryPoint& entry_of(PyObject* self) { return *reinterpret_cast<EntryHandle*>(self)->e; }

// mg.<name>(*args, **kwargs): positional arguments, then keywords by parameter name.
// `self_arg`, when not null, is the first argument (a Tensor method).
PyObject* call_entry(const EntryPoint& e, PyObject* self_arg, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames) {
  const int np = static_cast<int>(e.params.size());
  const Py_ssize_t npos = nargs + (self_arg ? 1 : 0);
  try {
    if (npos > np)
      throw TypeError(std::string(e.name) + ": takes " + std::to_string(np) + " arguments but " + std::to_string(npos) +
                      " were given");
    PyObject* given[4] = {nullptr, nullptr, nullptr, nullptr};
    for (Py_ssize_t i = 0; i < npos; ++i) given[i] = self_arg ? (i == 0 ? self_arg : args[i - 1]) : args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      const char* key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
      if (!key) throw py::error_already_set();
      int at = -1;
      for (int i = 0; i < np; ++i)
        if (std::strcmp(e.params[i].name, key) == 0) at = i;
      if (at < 0) throw TypeError(std::string(e.name) + ": got an unexpected keyword argument '" + key + "'");
      if (given[at]) throw TypeError(std::string(e.name) + ": got multiple values for argument '" + key + "'");
      given[at] = args[nargs + k];
    }
    Arg conv[4];
    ArgStore store;
    int n = 0;
    for (int i = 0; i < np; ++i) {
      if (!given[i]) {
        if (!e.params[i].default_value)
          throw TypeError(std::string(e.name) + ": missing required argument '" + e.params[i].name + "'");
        break;  // call() fills the defaults of the trailing parameters
      }
      conv[i] = convert(given[i], e.params[i], e.name, conv, i, store, given, np);
      n = i + 1;
    }
    for (int i = n; i < np; ++i)
      if (given[i])  // a keyword after a defaulted gap: convert the gap's defaults too
        throw TypeError(std::string(e.name) + ": give '" + e.params[n].name + "' before '" + e.params[i].name + "'");
    return results(e, call(e, conv, n));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// mg.sin(x) and the other entry points of one operand: METH_O, the cheapest call (positional only).
PyObject* fn_entry_o(PyObject* self, PyObject* x) {
  const EntryPoint& e = entry_of(self);
  try {
    const Arg in[1] = {operand_arg(x, e.name)};
    return results(e, e.fn(e, in));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* fn_entry(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const EntryPoint& e = entry_of(self);
  nargs = PyVectorcall_NARGS(nargs);
  // The common case first: every parameter an operand, all given by position (mg.sin(x), mg.add(x, y)).
  if (!kwnames && (nargs == 1 || nargs == 2) && e.params.size() == std::size_t(nargs) &&
      e.params[0].kind == ParamKind::operand && e.params[nargs - 1].kind == ParamKind::operand) {
    try {
      if (nargs == 1) {
        const Arg in[1] = {operand_arg(args[0], e.name)};
        return results(e, e.fn(e, in));
      }
      const Arg in[2] = {operand_arg(args[0], e.name, &args[1], 1), operand_arg(args[1], e.name, &args[0], 1)};
      return results(e, e.fn(e, in));
    } catch (...) {
      set_python_error();
      return nullptr;
    }
  }
  return call_entry(e, nullptr, args, nargs, kwnames);
}

// ---- operators: Tensor's number slots ----

const EntryPoint* g_operator[9] = {};

// Operands matgrad converts (or refuses with its own error); anything else is another
// library's type, which gets its chance through NotImplemented (its __radd__ etc.).
bool is_operand(PyObject* o) {
  if (PyFloat_Check(o) || PyLong_Check(o) || PyList_Check(o) || PyTuple_Check(o) || PyUnicode_Check(o) ||
      PyBytes_Check(o) || PyComplex_Check(o) || o == Py_None)
    return true;
  auto& api = py::detail::npy_api::get();
  if (api.PyArray_Check_(o)) return true;
  if (PyObject_HasAttrString(reinterpret_cast<PyObject*>(Py_TYPE(o)), "__array__")) return true;
  static PyObject* generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  return PyObject_IsInstance(o, generic) == 1;
}

template <PyOperator Op>
PyObject* nb_binary(PyObject* a, PyObject* b) {
  const EntryPoint& e = *g_operator[int(Op)];
  try {
    // a weak number on either side needs no more checks (most operators are x * 0.9, 2 * x)
    const bool wa = is_weak_scalar(a), wb = is_weak_scalar(b);
    if (!wa && !wb) {
      PyObject* other = is_tensor(a) ? b : a;
      if (!is_tensor(other) && !is_operand(other)) Py_RETURN_NOTIMPLEMENTED;
    }
    const Arg in[2] = {wa ? Arg(weak_scalar_value(a, e.name)) : operand_arg(a, e.name, &b, 1),
                       wb ? Arg(weak_scalar_value(b, e.name)) : operand_arg(b, e.name, &a, 1)};
    return wrap(std::move(e.fn(e, in).v[0]));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* nb_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) {
    PyErr_SetString(PyExc_TypeError, "pow: a modulus is not supported");
    return nullptr;
  }
  return nb_binary<PyOperator::pow>(a, b);
}

template <PyOperator Op>
PyObject* nb_unary(PyObject* a) {
  const EntryPoint& e = *g_operator[int(Op)];
  try {
    const Arg in[1] = {Arg(NodeRef(tensor_ptr(a)))};
    return wrap(std::move(e.fn(e, in).v[0]));
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* nb_positive(PyObject* a) {
  Py_INCREF(a);
  return a;
}

// The operators as methods too (Tensor.__add__ ...), through the same slot functions.
template <PyOperator Op>
PyObject* m_binary(PyObject* self, PyObject* other) {
  return nb_binary<Op>(self, other);
}
template <PyOperator Op>
PyObject* m_rbinary(PyObject* self, PyObject* other) {
  return nb_binary<Op>(other, self);
}
template <PyOperator Op>
PyObject* m_unary(PyObject* self, PyObject*) {
  return nb_unary<Op>(self);
}
PyObject* m_positive(PyObject* self, PyObject*) { return nb_positive(self); }

// Storage for what CPython keeps pointers to: method definitions and their docstrings.
std::deque<PyMethodDef>& method_defs() {
  static std::deque<PyMethodDef> d;
  return d;
}
const char* keep(std::string s) {
  static std::deque<std::string> strings;
  return strings.emplace_back(std::move(s)).c_str();
}

void add_method(PyTypeObject* type, const char* name, PyCFunction fn, int flags, std::string doc) {
  PyMethodDef& d = method_defs().emplace_back(PyMethodDef{keep(name), fn, flags, keep(std::move(doc))});
  PyObject* descr = PyDescr_NewMethod(type, &d);
  if (!descr || PyDict_SetItemString(type->tp_dict, name, descr) != 0) {
    Py_XDECREF(descr);
    throw py::error_already_set();
  }
  Py_DECREF(descr);
}

struct Dunder {
  PyOperator op;
  const char* name;
  const char* rname;
  const char* symbol;  // "self + other"
};
constexpr Dunder kDunders[] = {
    {PyOperator::add, "__add__", "__radd__", "+"},  {PyOperator::sub, "__sub__", "__rsub__", "-"},
    {PyOperator::mul, "__mul__", "__rmul__", "*"},  {PyOperator::truediv, "__truediv__", "__rtruediv__", "/"},
    {PyOperator::pow, "__pow__", "__rpow__", "**"}, {PyOperator::matmul, "__matmul__", "__rmatmul__", "@"},
    {PyOperator::neg, "__neg__", nullptr, "-"},     {PyOperator::abs, "__abs__", nullptr, "abs"},
};

PyCFunction binary_method(PyOperator op, bool reflected) {
  switch (op) {
#define MG_CASE(o)    \
  case PyOperator::o: \
    return reflected ? (PyCFunction)m_rbinary<PyOperator::o> : (PyCFunction)m_binary<PyOperator::o>;
    MG_CASE(add)
    MG_CASE(sub)
    MG_CASE(mul)
    MG_CASE(truediv)
    MG_CASE(pow)
    MG_CASE(matmul)
#undef MG_CASE
    case PyOperator::neg:
      return (PyCFunction)m_unary<PyOperator::neg>;
    case PyOperator::abs:
      return (PyCFunction)m_unary<PyOperator::abs>;
    case PyOperator::none:
      break;
  }
  return nullptr;
}

// The docstring of an operator method: the op's, read with self and other in place of x and y.
std::string operator_doc(const EntryPoint& e, const Dunder& d, bool reflected) {
  const char* name = reflected ? d.rname : d.name;
  if (!d.rname) {
    return std::string(name) + "(self: matgrad._core.Tensor) -> matgrad._core.Tensor\n\n`" + d.symbol +
           (d.op == PyOperator::abs ? "(self)`" : "self`") + ", as `mg." + e.name + "(self)`: " + e.what +
           "\n\nShapes: the same shape.\n\n" + e.rule + " (x = self)";
  }
  const char* l = reflected ? "other" : "self";
  const char* r = reflected ? "self" : "other";
  return std::string(name) + "(self: matgrad._core.Tensor, other: object) -> matgrad._core.Tensor\n\n`" + l + " " +
         d.symbol + " " + r + "`, as `mg." + e.name + "(" + l + ", " + r + ")`: " + e.what + "\n\nShapes: " + e.shapes +
         "\n\n" + e.rule + " (x = " + l + ", y = " + r + ")";
}

// Tensor.<method>(...) and Tensor.<property>: a builtin whose self is the entry point's handle
// and whose first argument is the Tensor (PyInstanceMethod or property passes it).
// "sum(self: matgrad._core.Tensor, axis: object = None) -> ...", then as mg.sum with x = self.
std::string member_doc(const EntryPoint& e) {
  std::string head = e.property ? std::string(e.property) + " -> Tensor" : e.signature(e.method, true);
  std::string call = std::string("`mg.") + e.name + "(self";
  for (std::size_t i = 1; i < e.params.size(); ++i) call += std::string(", ") + e.params[i].name;
  call += ")`";
  return head + "\n\n" + call + ": " + e.what + "\n\nShapes: " + e.shapes + "\n\n" + e.rule + " (x = self)";
}

PyObject* method_call(PyObject* handle, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const EntryPoint& e = entry_of(handle);
  nargs = PyVectorcall_NARGS(nargs);
  if (nargs < 1 || !is_tensor(args[0])) {
    PyErr_Format(PyExc_TypeError, "%s: needs a Tensor as self", e.name);
    return nullptr;
  }
  // Tensor.reshape(2, 3) as well as Tensor.reshape((2, 3)): extra positional ints form the shape.
  if (e.params.size() == 2 && e.params[1].kind == ParamKind::shape && nargs > 2 && !kwnames) {
    py::tuple shape(nargs - 1);
    for (Py_ssize_t i = 1; i < nargs; ++i) shape[i - 1] = py::reinterpret_borrow<py::object>(args[i]);
    PyObject* a2[2] = {args[0], shape.ptr()};
    return call_entry(e, nullptr, a2, 2, nullptr);
  }
  return call_entry(e, nullptr, args, nargs, kwnames);
}

}  // namespace

void bind_entry(py::module_& m) {
  PyObject* handle_type = PyType_FromSpec(&g_handle_spec);
  if (!handle_type) throw py::error_already_set();
  g_handle_type = reinterpret_cast<PyTypeObject*>(handle_type);
  m.add_object("_EntryHandle", py::reinterpret_steal<py::object>(handle_type));
  PyObject* all = PyList_New(0);
  if (!all) throw py::error_already_set();
  py::object all_list = py::reinterpret_steal<py::object>(all);
  py::str modname = m.attr("__name__");
  py::object partialmethod = py::module_::import("functools").attr("partialmethod");
  py::object property = py::module_::import("builtins").attr("property");
  auto* type = g_tensor_type;
  for (const EntryPoint* e : entry_points()) {
    py::object handle = py::reinterpret_steal<py::object>(handle_of(e));
    const bool one_operand = e->params.size() == 1 && e->params[0].kind == ParamKind::operand;
    PyMethodDef& d = method_defs().emplace_back(
        one_operand ? PyMethodDef{e->name, (PyCFunction)fn_entry_o, METH_O, keep(e->docstring())}
                    : PyMethodDef{e->name, (PyCFunction)(void (*)())fn_entry, METH_FASTCALL | METH_KEYWORDS,
                                  keep(e->docstring())});
    PyObject* fn = PyCFunction_NewEx(&d, handle.ptr(), modname.ptr());
    if (!fn) throw py::error_already_set();
    m.add_object(e->name, py::reinterpret_steal<py::object>(fn), /*overwrite=*/true);
    if (PyList_Append(all, py::str(e->name).ptr()) != 0) throw py::error_already_set();

    // Tensor methods and properties: a builtin taking the Tensor first, made a method by a
    // descriptor (PyInstanceMethod) so that x.sum(1) passes x.
    if (e->method || e->property) {
      PyMethodDef& md = method_defs().emplace_back(PyMethodDef{e->method ? e->method : e->property,
                                                               (PyCFunction)(void (*)())method_call,
                                                               METH_FASTCALL | METH_KEYWORDS, keep(member_doc(*e))});
      PyObject* raw = PyCFunction_NewEx(&md, handle.ptr(), modname.ptr());
      if (!raw) throw py::error_already_set();
      py::object builtin = py::reinterpret_steal<py::object>(raw);
      py::object member;
      if (e->method) {
        PyObject* im = PyInstanceMethod_New(builtin.ptr());
        if (!im) throw py::error_already_set();
        member = py::reinterpret_steal<py::object>(im);
        if (PyDict_SetItemString(type->tp_dict, e->method, member.ptr()) != 0) throw py::error_already_set();
      } else {
        member = property(builtin, py::none(), py::none(), py::str(md.ml_doc));
        if (PyDict_SetItemString(type->tp_dict, e->property, member.ptr()) != 0) throw py::error_already_set();
      }
    }
    // Operators: the number slot and the dunder methods.
    if (e->pyop != PyOperator::none) {
      g_operator[int(e->pyop)] = e;
      for (const Dunder& dd : kDunders) {
        if (dd.op != e->pyop) continue;
        if (dd.rname) {
          add_method(type, dd.name, binary_method(dd.op, false), METH_O, operator_doc(*e, dd, false));
          add_method(type, dd.rname, binary_method(dd.op, true), METH_O, operator_doc(*e, dd, true));
        } else {
          add_method(type, dd.name, binary_method(dd.op, false), METH_NOARGS, operator_doc(*e, dd, false));
        }
      }
    }
  }
  add_method(type, "__pos__", (PyCFunction)m_positive, METH_NOARGS,
             "__pos__(self: matgrad._core.Tensor) -> matgrad._core.Tensor\n\n`+self`: self itself, the same shape "
             "(no new node). d/dself: `G`");

  auto* ht = reinterpret_cast<PyHeapTypeObject*>(type);
  PyNumberMethods& nb = ht->as_number;
  if (g_operator[int(PyOperator::add)]) nb.nb_add = nb_binary<PyOperator::add>;
  if (g_operator[int(PyOperator::sub)]) nb.nb_subtract = nb_binary<PyOperator::sub>;
  if (g_operator[int(PyOperator::mul)]) nb.nb_multiply = nb_binary<PyOperator::mul>;
  if (g_operator[int(PyOperator::truediv)]) nb.nb_true_divide = nb_binary<PyOperator::truediv>;
  if (g_operator[int(PyOperator::matmul)]) nb.nb_matrix_multiply = nb_binary<PyOperator::matmul>;
  if (g_operator[int(PyOperator::pow)]) nb.nb_power = nb_power;
  if (g_operator[int(PyOperator::neg)]) nb.nb_negative = nb_unary<PyOperator::neg>;
  if (g_operator[int(PyOperator::abs)]) nb.nb_absolute = nb_unary<PyOperator::abs>;
  nb.nb_positive = nb_positive;
  type->tp_as_number = &nb;
  PyType_Modified(type);

  // The table itself, for the documentation's API pages and the tests' coverage checks.
  m.def(
      "_entry_points",
      [] {
        py::list r;
        for (const EntryPoint* e : entry_points()) {
          py::list params;
          for (const Param& p : e->params) params.append(py::str(p.name));
          py::dict d;
          d["name"] = e->name;
          d["family"] = e->family;
          d["params"] = params;
          d["method"] = e->method ? py::object(py::str(e->method)) : py::object(py::none());
          d["property"] = e->property ? py::object(py::str(e->property)) : py::object(py::none());
          d["operator"] = e->pyop != PyOperator::none;
          r.append(d);
        }
        return r;
      },
      "The public ops as the engine defines them: name, family, parameter names, and the Tensor method, "
      "property or operator each also is (for the documentation and the tests).");

  // _core.__all__: the Tensor type, mg.tensor and is_grad_enabled, then every public op.
  py::list names;
  names.append("Tensor");
  names.append("tensor");
  names.append("is_grad_enabled");
  for (py::handle n : all_list) names.append(n);
  m.attr("__all__") = names;
}

/// Whether Tensor's number slots are the ones installed above (for the test that proves the
/// fast path runs).
bool operator_slots_installed() {
  auto* ht = reinterpret_cast<PyHeapTypeObject*>(g_tensor_type);
  return g_tensor_type->tp_as_number == &ht->as_number &&
         ht->as_number.nb_add == static_cast<binaryfunc>(nb_binary<PyOperator::add>) &&
         ht->as_number.nb_multiply == static_cast<binaryfunc>(nb_binary<PyOperator::mul>);
}

}  // namespace matgrad::py_bind
