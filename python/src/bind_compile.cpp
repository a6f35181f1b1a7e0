// SPDX-License-Identifier: MIT
// Compiled programs in Python (python/matgrad/_compile.py builds mg.compile on these): the
// trace switch, trace inputs, building programs, running them with the GIL released, the archive.
// Conversion only; the programs are the engine's (matgrad/program.hpp).
#include "common.hpp"

#include <pybind11/stl.h>

#include <structmember.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace matgrad::py_bind {

namespace {

struct PyProgram {
  std::shared_ptr<const Program> p;
};

// Note [tracing], Python's side: `with _core._tracing():` turns tracing on for this thread.
struct TraceGuard {
  std::unique_ptr<TraceMode> mode;
};

unsigned long g_main_thread = 0;
thread_local PyObject* t_pending[3] = {nullptr, nullptr, nullptr};  // what a signal handler raised

// The interrupt check of matgrad/interrupt.hpp: Python's pending signals (Ctrl-C), on the main
// thread only (where Python runs its handlers). Called without the GIL from replays.
bool python_interrupted() {
  if (PyThread_get_thread_ident() != g_main_thread) return false;
  PyGILState_STATE s = PyGILState_Ensure();
  const bool hit = PyErr_CheckSignals() != 0;
  if (hit) {
    for (PyObject*& o : t_pending) Py_CLEAR(o);
    PyErr_Fetch(&t_pending[0], &t_pending[1], &t_pending[2]);
  }
  PyGILState_Release(s);
  return hit;
}

py::tuple shape_dtype(const Slot& s) {
  return py::make_tuple(shape_tuple(s.batch ? Shape::matrix(s.batch, s.shape.size()) : s.shape), numpy_dtype(s.dtype));
}

// ---- the call path of a compiled function (Note [compiled calls]) ----

// Note [compiled calls]
// A compiled function's value and each of its transforms is a CompiledCall: a small hand-written
// CPython type with vectorcall, holding a table of the signatures traced so far. A call whose
// positional arguments match an entry exactly (C-contiguous arrays of the traced shape and dtype,
// read in place, or floats, Python's or NumPy's float64, for traced 0-D float64 arguments; static arguments equal to
// the traced values) and that has no keyword arguments replays its program straight away, the GIL released, and shapes
// the results; anything else (a new signature, keywords, Tensors, other dtypes) goes to the Python function `slow`
// (matgrad/_compile.py), which traces, builds the program and adds the entry. Matching happens with the GIL held, so
// adding never races with it.
struct ArgSpec {
  bool array = true;
  Shape shape{};
  DType dtype = DType::f64;
  py::object value;  ///< a static argument's value
};

enum class Mode : int { value = 0, value_and_grad = 1, grad = 2, jacobian = 3, hessian = 4 };

struct Entry {
  std::vector<ArgSpec> args;
  std::shared_ptr<const Program> program;
  Mode mode = Mode::value;
  bool tuple_out = false;  ///< value: f returned a tuple; grads: a tuple argnums
  py::object shapes;       ///< jacobian / hessian: the full shape of each block
  int n = 0;               ///< hessian: the number of argnums
};

struct CompiledCall {
  PyObject_HEAD vectorcallfunc vectorcall;
  std::vector<Entry>* entries;
  PyObject* slow;
  PyObject* weakrefs;
};

PyTypeObject* g_call_type = nullptr;

bool matches(const ArgSpec& s, PyObject* a, Val& v, double& scratch) {
  if (!s.array) {
    if (Py_TYPE(a) != Py_TYPE(s.value.ptr())) return false;
    if (PyFloat_CheckExact(a)) {
      const double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(s.value.ptr());
      return std::memcmp(&x, &y, sizeof(double)) == 0;
    }
    const int eq = PyObject_RichCompareBool(a, s.value.ptr(), Py_EQ);
    if (eq < 0) PyErr_Clear();
    return eq == 1;
  }
  if (PyFloat_Check(a)) {  // a Python float, or NumPy's float64 scalar (a float subclass)
    if (s.shape.ndim != 0 || s.dtype != DType::f64) return false;
    scratch = PyFloat_AS_DOUBLE(a);
    v = Val(&scratch, s.shape, s.dtype);
    return true;
  }
  auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(a)) return false;
  auto* arr = py::detail::array_proxy(a);
  constexpr int kFlags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((arr->flags & kFlags) != kFlags || arr->nd != s.shape.ndim) return false;
  const int num = py::detail::array_descriptor_proxy(arr->descr)->type_num;
  if (num != (s.dtype == DType::f64 ? py::detail::npy_api::NPY_DOUBLE_ : py::detail::npy_api::NPY_FLOAT_)) return false;
  if (s.shape.ndim == 1 && arr->dimensions[0] != s.shape.cols) return false;
  if (s.shape.ndim == 2 && (arr->dimensions[0] != s.shape.rows || arr->dimensions[1] != s.shape.cols)) return false;
  v = Val(arr->data, s.shape, s.dtype);
  return true;
}

PyObject* shaped(PyObject* arr, PyObject* shape) {
  PyObject* r = PyObject_CallMethod(arr, "reshape", "(O)", shape);
  Py_DECREF(arr);
  return r;
}

PyObject* tuple_of(std::vector<PyObject*>& items, std::size_t from, std::size_t to) {
  PyObject* t = PyTuple_New(Py_ssize_t(to - from));
  if (!t) return nullptr;
  for (std::size_t i = from; i < to; ++i) {
    PyTuple_SET_ITEM(t, Py_ssize_t(i - from), items[i]);
    items[i] = nullptr;
  }
  return t;
}

PyObject* take(std::vector<PyObject*>& items, std::size_t i) {
  PyObject* p = items[i];
  items[i] = nullptr;
  return p;
}

// The results as the transform returns them.
PyObject* shape_results(const Entry& e, const std::vector<Val>& out) {
  std::vector<PyObject*> items;
  struct Drop {
    std::vector<PyObject*>& v;
    ~Drop() {
      for (PyObject* p : v) Py_XDECREF(p);
    }
  } drop{items};
  for (std::size_t k = 0; k < out.size(); ++k) {
    PyObject* a = new_array(out[k], true);
    if (a && !e.shapes.is_none()) a = shaped(a, PyList_GET_ITEM(e.shapes.ptr(), Py_ssize_t(k)));
    if (!a) return nullptr;
    items.push_back(a);
  }
  const std::size_t n = items.size();
  switch (e.mode) {
    case Mode::value:
    case Mode::jacobian:
      return e.tuple_out ? tuple_of(items, 0, n) : take(items, 0);
    case Mode::grad:
      return e.tuple_out ? tuple_of(items, 1, n) : take(items, 1);
    case Mode::value_and_grad: {
      PyObject* g = e.tuple_out ? tuple_of(items, 1, n) : take(items, 1);
      if (!g) return nullptr;
      PyObject* v = take(items, 0);
      PyObject* r = PyTuple_Pack(2, v, g);
      Py_DECREF(v);
      Py_DECREF(g);
      return r;
    }
    case Mode::hessian: {
      if (!e.tuple_out) return take(items, 0);
      PyObject* rows = PyTuple_New(e.n);
      if (!rows) return nullptr;
      for (int i = 0; i < e.n; ++i) {
        PyObject* row = tuple_of(items, std::size_t(i) * e.n, std::size_t(i + 1) * e.n);
        if (!row) {
          Py_DECREF(rows);
          return nullptr;
        }
        PyTuple_SET_ITEM(rows, i, row);
      }
      return rows;
    }
  }
  return nullptr;
}

PyObject* call_vectorcall(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  auto* c = reinterpret_cast<CompiledCall*>(self);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (!kwnames || PyTuple_GET_SIZE(kwnames) == 0) {
    std::vector<Entry>& entries = *c->entries;
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const Entry& e = entries[k];
      if (e.args.size() != std::size_t(nargs)) continue;
      Val vals[8];
      double scratch[8];
      std::vector<Val> in;
      bool ok = nargs <= 8;
      for (Py_ssize_t i = 0; ok && i < nargs; ++i) ok = matches(e.args[std::size_t(i)], args[i], vals[i], scratch[i]);
      if (!ok) continue;
      for (Py_ssize_t i = 0; i < nargs; ++i)
        if (e.args[std::size_t(i)].array) in.push_back(vals[i]);
      // the entries may change while the GIL is released: keep what the call needs
      Entry shape{{}, e.program, e.mode, e.tuple_out, e.shapes, e.n};
      try {
        std::vector<Val> out;
        {
          py::gil_scoped_release nogil;
          out = shape.program->run(in);
        }
        return shape_results(shape, out);
      } catch (...) {
        set_python_error();
        return nullptr;
      }
    }
  }
  return PyObject_Vectorcall(c->slow, args, nargsf, kwnames);
}

void call_dealloc(PyObject* self) {
  auto* c = reinterpret_cast<CompiledCall*>(self);
  if (c->weakrefs) PyObject_ClearWeakRefs(self);
  delete c->entries;
  Py_XDECREF(c->slow);
  PyTypeObject* t = Py_TYPE(self);
  t->tp_free(self);
  Py_DECREF(t);
}

PyObject* call_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  PyObject* slow = nullptr;
  static const char* kw[] = {"slow", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:CompiledCall", const_cast<char**>(kw), &slow)) return nullptr;
  if (!PyCallable_Check(slow)) {
    PyErr_SetString(PyExc_TypeError, "CompiledCall: slow must be callable");
    return nullptr;
  }
  auto* c = reinterpret_cast<CompiledCall*>(type->tp_alloc(type, 0));
  if (!c) return nullptr;
  c->vectorcall = call_vectorcall;
  c->entries = new std::vector<Entry>();
  Py_INCREF(slow);
  c->slow = slow;
  return reinterpret_cast<PyObject*>(c);
}

// _add(specs, program, mode, tuple_out, shapes, n): a traced signature's entry (from _compile.py).
PyObject* call_add(PyObject* self, PyObject* args) {
  try {
    PyObject *specs, *prog, *shapes;
    int mode, tuple_out, n;
    if (!PyArg_ParseTuple(args, "OOipOi:_add", &specs, &prog, &mode, &tuple_out, &shapes, &n)) return nullptr;
    Entry e;
    for (py::handle sp : py::reinterpret_borrow<py::sequence>(specs)) {
      auto t = py::reinterpret_borrow<py::tuple>(sp);
      ArgSpec a;
      a.array = t[0].cast<std::string>() == "a";
      if (a.array) {
        auto sh = t[1].cast<std::vector<std::int64_t>>();
        a.shape = sh.empty() ? Shape::scalar() : sh.size() == 1 ? Shape::vector(sh[0]) : Shape::matrix(sh[0], sh[1]);
        a.dtype = t[2].cast<std::string>() == "float32" ? DType::f32 : DType::f64;
      } else {
        a.value = py::reinterpret_borrow<py::object>(t[1]);
      }
      e.args.push_back(std::move(a));
    }
    e.program = py::cast<PyProgram&>(prog).p;
    e.mode = Mode(mode);
    e.tuple_out = tuple_out != 0;
    e.shapes = py::reinterpret_borrow<py::object>(shapes);
    e.n = n;
    auto* c = reinterpret_cast<CompiledCall*>(self);
    c->entries->insert(c->entries->begin(), std::move(e));  // the newest first
    Py_RETURN_NONE;
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyMethodDef g_call_methods[] = {
    {"_add", call_add, METH_VARARGS, "Add a traced signature's entry (matgrad/_compile.py)."},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef g_call_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CompiledCall, vectorcall), READONLY, nullptr},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CompiledCall, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyType_Slot g_call_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(call_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(call_dealloc)},
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_methods, g_call_methods},
    {Py_tp_members, g_call_members},
    {Py_tp_doc, const_cast<char*>("A compiled function's call path (Note [compiled calls]).")},
    {0, nullptr}};

PyType_Spec g_call_spec = {"matgrad._core.CompiledCall", sizeof(CompiledCall), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL, g_call_slots};

}  // namespace

bool restore_pending_interrupt() {
  if (!t_pending[0]) return false;
  PyErr_Restore(t_pending[0], t_pending[1], t_pending[2]);
  t_pending[0] = t_pending[1] = t_pending[2] = nullptr;
  return true;
}

void bind_compile(py::module_& m) {
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  set_interrupt_check(python_interrupted);

  PyObject* call_type = PyType_FromSpec(&g_call_spec);
  if (!call_type) throw py::error_already_set();
  g_call_type = reinterpret_cast<PyTypeObject*>(call_type);
  m.add_object("CompiledCall", py::reinterpret_steal<py::object>(call_type));

  py::class_<TraceGuard>(m, "_Tracing")
      .def("__enter__",
           [](TraceGuard& g) {
             g.mode = std::make_unique<TraceMode>();
             return &g;
           })
      .def("__exit__", [](TraceGuard& g, py::args) { g.mode.reset(); });
  m.def("_tracing", [] { return TraceGuard{}; }, "A context in which this thread traces (Note [tracing]).");
  m.def(
      "_trace_input",
      [](py::handle data, bool requires_grad) {
        // a leaf of its own holding the traced values (never the caller's memory)
        NodeRef n = node_from_data(data, true, py::none(), "compile");
        n->requires_grad = requires_grad;
        n->traced = true;
        return n;
      },
      py::arg("data"), py::arg("requires_grad"),
      "A leaf standing for an argument while compile traces (requires_grad for a differentiated one).");

  py::class_<PyProgram>(m, "Program",
                        "A compiled program (matgrad/program.hpp): a flat list of instructions over value slots, "
                        "replayed in C++ with the GIL released.")
      .def(
          "run",
          [](const PyProgram& self, py::sequence args) {
            const Program& p = *self.p;
            if (py::len(args) != p.inputs.size())
              throw TypeError("compile: the program takes " + std::to_string(p.inputs.size()) + " arrays, got " +
                              std::to_string(py::len(args)));
            std::vector<Val> in;
            std::vector<py::object> keep;  // converted arrays live until the call returns
            in.reserve(p.inputs.size());
            for (std::size_t i = 0; i < p.inputs.size(); ++i) {
              py::handle h = args[i];
              const Slot& s = p.slots[p.inputs[i]];
              if (is_tensor(h)) {
                Node* n = tensor_ptr(h);
                check_readable(*n, "compile");
                in.emplace_back(n->data, n->shape, n->dtype);
                continue;
              }
              // C-contiguous arrays of the traced dtype are read in place; the rest converted once
              NodeRef n = node_from_data(h, false, numpy_dtype(s.dtype), "compile");
              in.emplace_back(n->data, n->shape, n->dtype);
              keep.push_back(py::reinterpret_steal<py::object>(wrap(std::move(n))));
            }
            std::vector<Val> out;
            {
              py::gil_scoped_release nogil;
              out = p.run(in);
            }
            py::list r;
            for (const Val& v : out) r.append(py::reinterpret_steal<py::object>(new_array(v, true)));
            return r;
          },
          py::arg("args"), "Run on the arrays given (one per input): a list of new arrays, one per output.")
      .def("__str__", [](const PyProgram& self) { return self.p->str(); })
      .def("__repr__",
           [](const PyProgram& self) {
             const Program& p = *self.p;
             return "<matgrad Program: " + std::to_string(p.inputs.size()) + " inputs, " +
                    std::to_string(p.outputs.size()) + " outputs, " + std::to_string(p.code.size()) +
                    " instructions, workspace " + std::to_string(p.workspace_bytes) +
                    " bytes; print() it for its text>";
           })
      .def("to_dot", [](const PyProgram& self) { return self.p->to_dot(); })
      .def_property_readonly("workspace_bytes", [](const PyProgram& self) { return self.p->workspace_bytes; })
      .def_property_readonly("instructions", [](const PyProgram& self) { return self.p->code.size(); })
      .def_property_readonly("ops",
                             [](const PyProgram& self) {
                               py::list r;
                               for (const Instr& ins : self.p->code) r.append(py::str(op_name(ins.op)));
                               return r;
                             })
      .def_property_readonly("inputs",
                             [](const PyProgram& self) {
                               py::list r;
                               for (std::uint32_t s : self.p->inputs) r.append(shape_dtype(self.p->slots[s]));
                               return r;
                             })
      .def_property_readonly("outputs", [](const PyProgram& self) {
        py::list r;
        for (std::uint32_t s : self.p->outputs) r.append(shape_dtype(self.p->slots[s]));
        return r;
      });

  m.def(
      "_compile",
      [](const std::string& kind, const std::vector<Node*>& inputs, const std::vector<Node*>& outputs,
         const std::vector<int>& argnums, bool optimize, const std::string& op) {
        std::vector<NodeRef> in, out;
        for (Node* x : inputs) in.emplace_back(need(x, "_compile"));
        for (Node* y : outputs) out.emplace_back(need(y, "_compile"));
        auto p = std::make_shared<Program>();
        if (kind == "value") {
          *p = compile_graph(in, out, optimize);
        } else {
          if (out.size() != 1) throw TypeError("compile: " + kind + " needs one output");
          if (kind == "value_and_grad")
            *p = compile_value_and_grad(in, out[0], argnums, optimize, op.empty() ? kind.c_str() : op.c_str());
          else if (kind == "jacobian")
            *p = compile_jacobian(in, out[0], argnums, optimize);
          else if (kind == "hessian")
            *p = compile_hessian(in, out[0], argnums, optimize);
          else
            throw ValueError("compile: unknown kind '" + kind + "'");
        }
        return PyProgram{std::move(p)};
      },
      py::arg("kind"), py::arg("inputs"), py::arg("outputs"), py::arg("argnums"), py::arg("optimize") = true,
      py::arg("op") = "");

  m.def(
      "_save_programs",
      [](const std::vector<int>& argnums, const std::string& meta,
         const std::vector<std::tuple<std::string, std::string, PyProgram>>& entries) {
        ProgramArchive a;
        a.argnums = argnums;
        a.meta = meta;
        for (const auto& [key, kind, prog] : entries) a.entries.push_back({key, kind, prog.p});
        return py::bytes(save_programs(a));
      },
      py::arg("argnums"), py::arg("meta"), py::arg("entries"));
  m.def(
      "_load_programs",
      [](const py::bytes& data) {
        ProgramArchive a = load_programs(std::string(data));
        py::list entries;
        for (auto& e : a.entries) entries.append(py::make_tuple(e.key, e.kind, PyProgram{e.program}));
        return py::make_tuple(a.argnums, a.meta, entries);
      },
      py::arg("data"));
  m.def("_replay_stats", [] {
    ReplayStats s = replay_stats();
    return py::make_tuple(s.workspaces, s.pool_allocations, s.instructions);
  });
}

}  // namespace matgrad::py_bind
