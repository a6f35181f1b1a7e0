// SPDX-License-Identifier: MIT
// Shared by the binding files: conversion between Python objects and graph nodes. No engine
// logic lives here.
#pragma once

#include <matgrad/matgrad.hpp>
#include <matgrad/tensor.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

PYBIND11_DECLARE_HOLDER_TYPE(T, matgrad::Ref<T>, true)

namespace matgrad::py_bind {

namespace py = pybind11;

/// The Python type object of Tensor (set once by bind_tensor).
extern PyTypeObject* g_tensor_type;

inline bool is_tensor(py::handle h) {
  return Py_TYPE(h.ptr()) == g_tensor_type || PyObject_TypeCheck(h.ptr(), g_tensor_type);
}

/// The node behind a Tensor object (no type check: call is_tensor first).
inline Node* tensor_ptr(py::handle h) {
  auto* inst = reinterpret_cast<py::detail::instance*>(h.ptr());
  if (inst->simple_layout) return static_cast<Node*>(inst->simple_value_holder[0]);
  return static_cast<Node*>(inst->get_value_and_holder().value_ptr());
}

/// `t` itself, or TypeError naming `fn` for a null node (pybind11 passes None as null).
inline Node* need(Node* t, const char* fn) {
  if (!t) throw TypeError(std::string(fn) + ": expected a Tensor, got None");
  return t;
}

/// True for exact Python float/int/bool: weak scalars (NEP 50), kept as op attributes.
inline bool is_weak_scalar(py::handle h) {
  return PyFloat_CheckExact(h.ptr()) || PyLong_CheckExact(h.ptr()) || PyBool_Check(h.ptr());
}
double weak_scalar_value(py::handle h, const char* op);

/// Convert any accepted input (Tensor, ndarray, list, NumPy or Python scalar) to a node.
/// Python scalars become 0-D constants of `weak_dtype`. Raises TypeError/ValueError naming op.
NodeRef as_node(py::handle h, const char* op, DType weak_dtype = DType::f64);
/// A leaf from array-like data (the rules of mg.tensor).
/// `small_ints_f32`: bool and integer arrays of at most 16 bits become float32, as NumPy 2 keeps
/// them next to a float32 operand (int8 + float32 is float32); otherwise every bool and integer
/// array becomes float64 (int8 + 1.0 is float64).
NodeRef node_from_data(py::handle h, bool requires_grad, py::handle dtype, const char* op, bool map_always = false,
                       bool small_ints_f32 = false);
/// True for a float32 operand: a float32 Tensor, or a NumPy array or scalar of float32 or float16.
bool is_f32_operand(py::handle h);
/// Parse a dtype argument (None -> nullptr result).
bool parse_dtype(py::handle dtype, DType& out, const char* op);

py::tuple shape_tuple(const Shape& s);
py::dtype numpy_dtype(DType d);
/// A read-only NumPy view of the node's value that keeps the node alive.
py::array view_of(const NodeRef& n);

/// A new Python Tensor owning n (fast path, Note [the hot call path]). Null on error.
PyObject* wrap(NodeRef n);
/// A NumPy array of v: a copy, or v's buffer handed over when `writable_owned` and nobody else
/// holds it. Null on error.
PyObject* new_array(const Val& v, bool writable_owned);
/// Translate the exception in flight into the Python error (call inside catch (...)).
void set_python_error();
PyObject* linalg_error_type();
/// matgrad.AnomalyError (Note [anomaly mode]).
PyObject* anomaly_error_type();

/// Whether Tensor's number slots are matgrad's own (Note [the hot call path]).
bool operator_slots_installed();

/// The exception a signal handler raised while a computation ran without the GIL, restored as
/// the current Python error (false when there is none).
bool restore_pending_interrupt();

void bind_compile(py::module_& m);
void bind_fast(py::module_& m);
void bind_tensor(py::module_& m);
void bind_entry(py::module_& m);
void bind_transforms(py::module_& m);

}  // namespace matgrad::py_bind
