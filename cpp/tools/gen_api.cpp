// SPDX-License-Identifier: MIT
// Writes what is generated from the entry points (Note [entry points] in matgrad/entry.hpp),
// at build time:
//
//   gen_api --cpp OUT.hpp                   the C++ functions of the public ops (matgrad/api_ops.hpp)
//   gen_api --stub TEMPLATE.pyi.in OUT.pyi  the type stub of matgrad._core: the template with its
//                                           markers replaced by the ops' declarations
//
// A file is rewritten only when its text changes (so nothing that includes it rebuilds needlessly).
#include <matgrad/entry.hpp>
#include <matgrad/error.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

using matgrad::EntryPoint;
using matgrad::ParamKind;
using matgrad::PyOperator;

bool write_if_changed(const std::string& path, const std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::stringstream old;
    old << in.rdbuf();
    if (old.str() == text) return true;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return bool(out);
}

// Backticks and quotes out of a docstring line for a C++ comment.
std::string plain(const char* s) {
  std::string r;
  for (const char* p = s; *p; ++p)
    if (*p != '`') r += *p;
  return r;
}

std::string cpp_header() {
  std::string h =
      "// SPDX-License-Identifier: MIT\n"
      "// Generated at build time by cpp/tools/gen_api.cpp from the entry points (matgrad/entry.hpp):\n"
      "// one function per public op, the C++ face of mg.<name>. Operands are Vars or numbers (a number\n"
      "// is weak: it takes the other operand's dtype). Do not edit.\n"
      "#pragma once\n\n#include <matgrad/entry.hpp>\n#include <matgrad/ops.hpp>\n\n"
      "#include <array>\n#include <cstdint>\n#include <vector>\n\nnamespace matgrad {\n\n";
  for (const EntryPoint* e : matgrad::entry_points()) {
    std::string params, args;
    for (std::size_t i = 0; i < e->params.size(); ++i) {
      const matgrad::Param& p = e->params[i];
      const std::string n = p.name;
      if (i) {
        params += ", ";
        args += ", ";
      }
      switch (p.kind) {
        case ParamKind::operand:
          params += "const Arg& " + n;
          args += n;
          break;
        case ParamKind::operands:
          params += "const std::vector<NodeRef>& " + n;
          args += "Arg::list(" + n + ")";
          break;
        case ParamKind::axis:
          params += "int " + n + (p.default_value ? " = kAxisNone" : "");
          args += n + " == kAxisNone ? Arg() : Arg::integer(" + n + ")";
          break;
        case ParamKind::integer:
          params += "std::int64_t " + n + (p.default_value ? std::string(" = ") + p.default_value : "");
          args += "Arg::integer(" + n + ")";
          break;
        case ParamKind::shape:
          params += "const std::vector<std::int64_t>& " + n;
          args += "Arg::dims(" + n + ")";
          break;
      }
    }
    h += "/// " + plain(e->what) + "\n";
    const std::string body = "  static const EntryPoint& e = entry_point(\"" + std::string(e->name) + "\");\n" +
                             "  const Arg args_[] = {" + args + "};\n";
    if (e->tuple) {
      const std::string n = std::to_string(e->tuple);
      h += "inline std::array<NodeRef, " + n + "> " + e->name + "(" + params + ") {\n" + body +
           "  Results r = call(e, args_, " + std::to_string(e->params.size()) + ");\n  return {";
      for (int i = 0; i < e->tuple; ++i) h += (i ? ", r.v[" : "r.v[") + std::to_string(i) + "]";
      h += "};\n}\n";
    } else {
      h += "inline NodeRef " + std::string(e->name) + "(" + params + ") {\n" + body + "  return call(e, args_, " +
           std::to_string(e->params.size()) + ").v[0];\n}\n";
    }
  }
  return h + "\n}  // namespace matgrad\n";
}

const char* stub_type(ParamKind k) {
  switch (k) {
    case ParamKind::operand:
      return "_ArrayLike";
    case ParamKind::operands:
      return "Sequence[_ArrayLike]";
    case ParamKind::axis:
      return "_Axis";
    case ParamKind::integer:
      return "SupportsIndex";
    case ParamKind::shape:
      return "_Shape";
  }
  return "object";
}

std::string stub_result(const EntryPoint& e) {
  if (!e.tuple) return "Tensor";
  std::string r = "tuple[";
  for (int i = 0; i < e.tuple; ++i) r += i ? ", Tensor" : "Tensor";
  return r + "]";
}

std::string stub_params(const EntryPoint& e, bool self) {
  std::string s;
  for (std::size_t i = 0; i < e.params.size(); ++i) {
    if (i) s += ", ";
    if (i == 0 && self) {
      s += "self";
      continue;
    }
    s += std::string(e.params[i].name) + ": " + stub_type(e.params[i].kind);
    if (e.params[i].default_value) s += std::string(" = ") + e.params[i].default_value;
  }
  // one operand: a METH_O builtin in Python, positional only (python/src/bind_entry.cpp)
  if (!self && e.params.size() == 1 && e.params[0].kind == ParamKind::operand) s += ", /";
  return s;
}

// The dunder methods of each operator: (name, reflected).
struct Dunder {
  PyOperator op;
  const char* name;
  const char* rname;
};
constexpr Dunder kDunders[] = {
    {PyOperator::add, "__add__", "__radd__"}, {PyOperator::sub, "__sub__", "__rsub__"},
    {PyOperator::mul, "__mul__", "__rmul__"}, {PyOperator::truediv, "__truediv__", "__rtruediv__"},
    {PyOperator::pow, "__pow__", "__rpow__"}, {PyOperator::matmul, "__matmul__", "__rmatmul__"},
    {PyOperator::neg, "__neg__", nullptr},    {PyOperator::abs, "__abs__", nullptr},
};

std::string stub_members() {
  std::string m = "    # Generated from the entry points (cpp/tools/gen_api.cpp): methods, properties, operators.\n";
  for (const EntryPoint* e : matgrad::entry_points()) {
    if (e->property)
      m += "    @property\n    def " + std::string(e->property) + "(self) -> " + stub_result(*e) + ": ...\n";
    if (e->method && e->params.size() == 2 && e->params[1].kind == ParamKind::shape) {
      // x.reshape((2, 3)) and x.reshape(2, 3)
      m += "    @overload\n    def " + std::string(e->method) + "(self, " + e->params[1].name +
           ": _Shape, /) -> Tensor: ...\n";
      m += "    @overload\n    def " + std::string(e->method) + "(self, *" + e->params[1].name +
           ": SupportsIndex) -> Tensor: ...\n";
    } else if (e->method) {
      m += "    def " + std::string(e->method) + "(" + stub_params(*e, true) + ") -> " + stub_result(*e) + ": ...\n";
    }
    for (const Dunder& d : kDunders) {
      if (d.op != e->pyop) continue;
      if (d.rname) {
        m += "    def " + std::string(d.name) + "(self, other: _ArrayLike, /) -> Tensor: ...\n";
        m += "    def " + std::string(d.rname) + "(self, other: _ArrayLike, /) -> Tensor: ...\n";
      } else {
        m += "    def " + std::string(d.name) + "(self) -> Tensor: ...\n";
      }
    }
  }
  return m;
}

std::string stub_functions() {
  std::string f = "# Generated from the entry points (cpp/tools/gen_api.cpp): the public ops.\n__all__ += [";
  bool first = true;
  for (const EntryPoint* e : matgrad::entry_points()) {
    f += std::string(first ? "" : ", ") + "\"" + e->name + "\"";
    first = false;
  }
  f += "]\n\n";
  std::string family;
  for (const EntryPoint* e : matgrad::entry_points()) {
    if (family != e->family) {
      family = e->family;
      f += "# ---- " + family + " ----\n";
    }
    f += "def " + std::string(e->name) + "(" + stub_params(*e, false) + ") -> " + stub_result(*e) + ": ...\n";
  }
  return f;
}

bool replace(std::string& text, const std::string& marker, const std::string& with) {
  const std::size_t at = text.find(marker);
  if (at == std::string::npos) return false;
  // the whole line holding the marker
  const std::size_t b = text.rfind('\n', at) + 1;
  const std::size_t e = text.find('\n', at);
  text.replace(b, (e == std::string::npos ? text.size() : e + 1) - b, with);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--cpp") == 0 && i + 1 < argc) {
        if (!write_if_changed(argv[++i], cpp_header()))
          throw std::runtime_error(std::string("cannot write ") + argv[i]);
      } else if (std::strcmp(argv[i], "--stub") == 0 && i + 2 < argc) {
        std::ifstream in(argv[++i]);
        if (!in) throw std::runtime_error(std::string("cannot read ") + argv[i]);
        std::stringstream t;
        t << in.rdbuf();
        std::string text = t.str();
        if (!replace(text, "@TENSOR_MEMBERS@", stub_members()) || !replace(text, "@ENTRY_POINTS@", stub_functions()))
          throw std::runtime_error(std::string(argv[i]) + ": a marker (@TENSOR_MEMBERS@, @ENTRY_POINTS@) is missing");
        if (!write_if_changed(argv[++i], text)) throw std::runtime_error(std::string("cannot write ") + argv[i]);
      } else {
        std::cerr << "usage: gen_api [--cpp OUT.hpp] [--stub TEMPLATE.pyi.in OUT.pyi]\n";
        return 2;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "gen_api: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
