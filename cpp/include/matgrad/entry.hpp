// SPDX-License-Identifier: MIT
// Entry points: the public ops (mg.sin, mg.sum, matgrad::matmul, ...), each defined once, in
// its family file (cpp/src/ops/), beside the registry ops it is built on.
//
// Note [entry points]
// A public op is more than a kernel and its VJP: it has a name users call, parameters (operands
// that may be weak Python-style numbers, an axis, an integer, a shape), checks, dtype promotion,
// a choice among registry ops (x + 2.0 is add_s, x + y is add), and a docstring. An EntryPoint
// holds all of that beside the op it calls, and everything else is driven from the table:
// the Python functions, methods and operators (python/src/bind_entry.cpp converts arguments and
// calls `fn`), their docstrings (docstring()), the type stub and the C++ functions in
// matgrad/api_ops.hpp (both generated at build time by cpp/tools/gen_api.cpp), the API pages
// of the documentation and the test suites' coverage checks. In Python an entry point of one
// operand is positional-only (the cheapest call, METH_O); the others take keywords too.
#pragma once

#include <matgrad/node.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

/// One argument of an entry point, converted from Python or C++. A list or a shape is
/// referred to, not copied: keep it alive until the call returns.
struct Arg {
  enum Kind : std::uint8_t {
    kNone,     ///< not given, or None
    kNode,     ///< an operand (node)
    kScalar,   ///< an operand given as a weak number (NEP 50: it takes the other operand's dtype)
    kInt,      ///< an axis or an integer
    kNodes,    ///< a list of operands
    kInts,     ///< a shape
  };
  Kind kind = kNone;
  NodeRef node;
  double scalar = 0.0;
  std::int64_t i = 0;
  const std::vector<NodeRef>* nodes = nullptr;
  const std::vector<std::int64_t>* ints = nullptr;

  Arg() = default;
  Arg(NodeRef n) : kind(kNode), node(std::move(n)) {}  // NOLINT: operands convert implicitly
  Arg(double s) : kind(kScalar), scalar(s) {}          // NOLINT
  Arg(int s) : kind(kScalar), scalar(s) {}             // NOLINT
  static Arg integer(std::int64_t v) {
    Arg a;
    a.kind = kInt;
    a.i = v;
    return a;
  }
  static Arg list(const std::vector<NodeRef>& xs) {
    Arg a;
    a.kind = kNodes;
    a.nodes = &xs;
    return a;
  }
  static Arg dims(const std::vector<std::int64_t>& d) {
    Arg a;
    a.kind = kInts;
    a.ints = &d;
    return a;
  }
  bool is_none() const { return kind == kNone; }
};

/// What a parameter takes (and how Python and C++ pass it).
enum class ParamKind : std::uint8_t {
  operand,   ///< a Tensor, array, list or number (a Python number stays weak)
  operands,  ///< a list or tuple of operands
  axis,      ///< None or an integer axis
  integer,   ///< an integer
  shape,     ///< an integer or a tuple of integers (one may be -1)
};

struct Param {
  const char* name;
  ParamKind kind;
  const char* default_value = nullptr;  ///< as Python writes it ("None", "0"); null: required
};

/// The results of an entry point: one node, or a tuple of up to four.
struct Results {
  NodeRef v[4];
  int n = 0;
  Results() = default;
  Results(NodeRef a) : n(1) { v[0] = std::move(a); }  // NOLINT
};

/// The operator of Python's Tensor an entry point also is (x + y, x @ y, -x, abs(x)).
enum class PyOperator : std::uint8_t { none, add, sub, mul, truediv, pow, matmul, neg, abs };

struct EntryPoint;
using FrontFn = Results (*)(const EntryPoint& e, const Arg* args);

struct EntryPoint {
  const char* name = nullptr;    ///< the public name: mg.<name>, matgrad::<name>
  const char* family = nullptr;  ///< elementwise, reductions, shape, linalg (the API pages)
  std::vector<Param> params;
  int tuple = 0;                 ///< 0: one result; k > 0: a tuple of k results
  FrontFn fn = nullptr;          ///< checks, promotes, picks the registry op(s), applies them
  OpId op{};                     ///< the registry op a generic front end applies
  // documentation (Python docstrings, the API pages, api_ops.hpp):
  const char* what = nullptr;    ///< what it computes
  const char* shapes = nullptr;  ///< the shapes it takes and gives
  const char* rule = nullptr;    ///< its derivative rule, "d/dx: `G * cos(x)`" (G: the output's adjoint)
  // how Python shows it besides mg.<name>:
  const char* method = nullptr;    ///< Tensor.<method>(other params), self the first operand
  const char* property = nullptr;  ///< Tensor.<property>, self the only operand
  PyOperator pyop = PyOperator::none;

  /// Set the documentation (in the family files: e.define(...).doc(what, shapes, rule)).
  EntryPoint& doc(const char* what_, const char* shapes_, const char* rule_) {
    what = what_;
    shapes = shapes_;
    rule = rule_;
    return *this;
  }
  /// "name(x: object, axis: object = None) -> matgrad._core.Tensor": the signature line.
  std::string signature(const char* as_name = nullptr, bool self = false) const;
  /// The full docstring: signature line, what, "Shapes: ...", the rule.
  std::string docstring() const;
};

/// Every entry point, in registration order.
const std::vector<const EntryPoint*>& entry_points();
/// The entry point called `name` (a ValueError when there is none).
const EntryPoint& entry_point(const char* name);
/// Call e with its arguments (n of them; missing trailing ones take their defaults).
Results call(const EntryPoint& e, const Arg* args, int n);
inline NodeRef call1(const EntryPoint& e, std::initializer_list<Arg> args) {
  return call(e, args.begin(), static_cast<int>(args.size())).v[0];
}

}  // namespace matgrad
