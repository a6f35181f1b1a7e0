// SPDX-License-Identifier: MIT
// A program as data: its check, its text and DOT forms, and the binary archive.
#include <matgrad/error.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/program.hpp>

#include "../ops/registry.hpp"

#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace matgrad {

namespace {

[[noreturn]] void bad(const std::string& what) { throw ValueError("program: " + what); }

std::string slot_name(std::uint32_t s) { return "%" + std::to_string(s); }

std::string type_str(const Slot& s) {
  std::string t = std::string(dtype_name(s.dtype)) + s.shape.str();
  if (s.batch) t = std::to_string(s.batch) + " x " + t;
  return t;
}

// The attribute fields an op reads, as text.
std::string attr_str(OpId op, const Attr& a) {
  const std::uint8_t f = opdef(op).attrs;
  std::string r;
  auto add = [&r](const std::string& x) { r += (r.empty() ? "" : ", ") + x; };
  if (f & kAttrS) {
    std::ostringstream o;
    o.precision(17);
    o << a.s;
    add("s=" + o.str());
  }
  if (f & kAttrAxis) add("axis=" + (a.axis == kAxisNone ? std::string("None") : std::to_string(a.axis)));
  if (f & kAttrFlags) add(std::string("ta=") + (a.ta ? "1" : "0") + ", tb=" + (a.tb ? "1" : "0"));
  if (f & kAttrDtype) add(std::string("dtype=") + dtype_name(a.dtype));
  if (f & kAttrShape) add("shape=" + a.shape.str());
  if (f & kAttrOffset) add("offset=" + std::to_string(a.offset));
  if (f & kAttrOffset2) add("offset2=" + std::to_string(a.offset2));
  return r;
}

}  // namespace

void Program::validate() const {
  const std::size_t ns = slots.size();
  if (attrs.empty()) bad("no default attribute");
  std::vector<char> written(ns, 0);
  std::vector<char> produced(ns, 0);
  for (std::size_t s = 0; s < ns; ++s) {
    const Slot& sl = slots[s];
    if (!sl.shape.representable() || sl.shape.ndim < 0 || sl.shape.ndim > 2 || sl.batch < 0 ||
        (sl.shape.ndim < 2 && sl.shape.rows != 1) || (sl.shape.ndim == 0 && sl.shape.cols != 1))
      bad("slot " + std::to_string(s) + " has an invalid shape");
    std::int64_t e = 0;
    if (__builtin_mul_overflow(sl.shape.size(), sl.batch ? sl.batch : 1, &e) || e > (std::int64_t(1) << 59))
      bad("slot " + std::to_string(s) + " is too large");
    if (sl.dtype != DType::f64 && sl.dtype != DType::f32) bad("slot " + std::to_string(s) + " has an unknown dtype");
    switch (sl.kind) {
      case SlotKind::input:
        if (sl.index < 0 || std::size_t(sl.index) >= inputs.size() || inputs[std::size_t(sl.index)] != s)
          bad("input slot " + std::to_string(s) + " is not the input it names");
        // run() checks each argument against the slot's shape: one value, never a batch
        if (sl.batch) bad("input slot " + std::to_string(s) + " is batched");
        written[s] = 1;
        break;
      case SlotKind::constant: {
        if (sl.index < 0 || std::size_t(sl.index) >= constants.size())
          bad("constant slot " + std::to_string(s) + " names no constant");
        const Val& c = constants[std::size_t(sl.index)];
        if (!c || c.dtype() != sl.dtype || c.shape().size() != sl.elements())
          bad("constant slot " + std::to_string(s) + " does not match its constant");
        written[s] = 1;
        break;
      }
      case SlotKind::view: {
        if (sl.index < 0 || std::size_t(sl.index) >= s)
          bad("view slot " + std::to_string(s) + " names no earlier slot");
        const Slot& of = slots[std::size_t(sl.index)];
        if (of.elements() != sl.elements() || of.dtype != sl.dtype)
          bad("view slot " + std::to_string(s) + " does not fit the slot it views");
        break;
      }
      case SlotKind::temp:
        break;
      case SlotKind::block:
        if (sl.index < 0 || sl.index >= std::int64_t(block_buffers))
          bad("block slot " + std::to_string(s) + " names no block buffer");
        break;
      default:
        bad("slot " + std::to_string(s) + " has an unknown kind");
    }
  }
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i] >= ns || slots[inputs[i]].kind != SlotKind::input || slots[inputs[i]].index != std::int64_t(i))
      bad("input " + std::to_string(i) + " names no input slot");
  auto is_written = [&](std::uint32_t s) {
    while (slots[s].kind == SlotKind::view) s = static_cast<std::uint32_t>(slots[s].index);
    return written[s] != 0;
  };
  // the fused loops: in order, disjoint, each over elementwise members of its element count
  std::vector<std::int64_t> loop_of(code.size(), -1), block_loop(ns, -1);
  for (std::size_t l = 0; l < loops.size(); ++l) {
    const Loop& L = loops[l];
    const std::string at = "loop " + std::to_string(l);
    if (L.begin >= L.end || L.end > code.size() || (l && L.begin < loops[l - 1].end) || L.elements < 2)
      bad(at + " covers no valid range of instructions");
    for (std::uint32_t i = L.begin; i < L.end; ++i) {
      loop_of[i] = std::int64_t(l);
      const Instr& ins = code[i];
      const bool elementwise = ins.op.v > 0 && ins.op.v < op_count() &&
                               (opdef(ins.op).batch == BatchKind::unary || opdef(ins.op).batch == BatchKind::binary);
      bool fits = elementwise && ins.nin <= 2 && ins.out < ns && !slots[ins.out].batch &&
                  slots[ins.out].elements() == L.elements && std::size_t(ins.in) + ins.nin <= args.size();
      for (int j = 0; fits && j < ins.nin; ++j) {
        const std::uint32_t s = args[ins.in + j];
        fits = s < ns && !slots[s].batch && (slots[s].elements() == L.elements || slots[s].elements() == 1);
      }
      if (!fits) bad(at + " holds instruction " + std::to_string(i) + ", which is not elementwise over its elements");
      block_loop[ins.out] = std::int64_t(l);
    }
  }
  for (std::size_t s = 0; s < ns; ++s)
    if (slots[s].kind == SlotKind::view && slots[std::size_t(slots[s].index)].kind == SlotKind::block)
      bad("view slot " + std::to_string(s) + " views a block slot");
  for (std::uint32_t s : outputs)
    if (s < ns && slots[s].kind == SlotKind::block) bad("an output names a block slot");
  const int nops = op_count();
  for (std::size_t i = 0; i < code.size(); ++i) {
    const Instr& ins = code[i];
    const std::string at = "instruction " + std::to_string(i);
    if (ins.op.v == 0 || ins.op.v >= nops) bad(at + " has an unknown op");
    const OpDef& d = opdef(ins.op);
    if (!d.forward || (d.arity >= 0 && ins.nin != d.arity) || ins.nin < 1)
      bad(at + " (" + d.name + ") has " + std::to_string(ins.nin) + " inputs");
    if (ins.attr >= attrs.size() || std::size_t(ins.in) + ins.nin > args.size() || ins.out >= ns)
      bad(at + " (" + d.name + ") refers past the program's tables");
    const Slot& os = slots[ins.out];
    if ((os.kind != SlotKind::temp && os.kind != SlotKind::block) || produced[ins.out] ||
        (os.kind == SlotKind::block && loop_of[i] < 0))
      bad(at + " (" + d.name + ") writes a slot it may not write");
    produced[ins.out] = written[ins.out] = 1;
    SmallArray<Shape> shapes(ins.nin);
    std::int64_t k = 0;
    DType dt0 = DType::f64;
    for (int j = 0; j < ins.nin; ++j) {
      const std::uint32_t s = args[ins.in + j];
      if (s >= ns || !is_written(s) || s == ins.out) bad(at + " (" + d.name + ") reads a slot not written before it");
      if (slots[s].kind == SlotKind::block && block_loop[s] != loop_of[i])
        bad(at + " (" + d.name + ") reads a block slot of another loop");
      const Slot& sl = slots[s];
      shapes[j] = sl.shape;
      if (sl.batch) {
        if (k && sl.batch != k) bad(at + " (" + d.name + ") mixes batches");
        k = sl.batch;
      }
      if (j == (d.index_input == 0 ? 1 : 0)) dt0 = sl.dtype;
    }
    for (int j = 0; j < ins.nin; ++j)
      if (j != d.index_input && slots[args[ins.in + j]].dtype != dt0) bad(at + " (" + d.name + ") mixes dtypes");
    const Attr& a = attrs[ins.attr];
    if ((d.attrs & kAttrDtype) && a.dtype != DType::f64 && a.dtype != DType::f32)
      bad(at + " (" + d.name + ") has an unknown dtype attribute");
    if ((d.attrs & kAttrAxis) && a.axis != kAxisNone && (a.axis < -2 || a.axis > 1))
      bad(at + " (" + d.name + ") has an invalid axis");
    Shape want;
    try {
      want = d.shape(a, shapes.p, ins.nin);
    } catch (const Error& e) {
      bad(at + " (" + d.name + "): " + e.what());
    }
    const DType dt = d.dtype ? d.dtype(a, nullptr, ins.nin) : dt0;
    if (!want.representable() || want != os.shape || dt != os.dtype || k != os.batch)
      bad(at + " (" + d.name + ") writes a slot of another shape, dtype or batch than its op gives");
    // A batched elementwise binary op runs as one kernel call over the (k, size) batch, an operand
    // that is not batched relabelled as one (1, size) row (run_batched): both operands must have
    // the result's member shape (the eager sweep broadcasts them first, the compiled one records
    // that broadcast), or the call reads past a smaller one.
    if (k && d.batch == BatchKind::binary)
      for (int j = 0; j < ins.nin; ++j)
        if (!shapes[j].same_storage(want))
          bad(at + " (" + d.name + ") has an operand of another shape than its batched result");
    // seed_matmul (made by the simplifier, Note in ops/linalg.cpp) reads its seed's member shape
    // from its attribute and writes one member per element of it, from the other operand taken
    // whole: its seed must be batched by exactly that many members of that shape, the other
    // operand not batched. Its shape rule sees no batches, so this is checked here.
    static const OpId seed_matmul = op_id("seed_matmul");
    if (ins.op == seed_matmul) {
      const Slot& seed = slots[args[ins.in]];
      if ((a.offset != 0 && a.offset != 1) || seed.batch == 0 || slots[args[ins.in + 1]].batch != 0 ||
          a.shape != seed.shape || seed.batch != seed.shape.size())
        bad(at + " (" + d.name + ") is not a product with a seed batch of its attribute's shape");
    }
  }
  for (std::size_t s = 0; s < ns; ++s)
    if ((slots[s].kind == SlotKind::temp || slots[s].kind == SlotKind::block) && !produced[s])
      bad("slot " + std::to_string(s) + " is never written");
  for (std::uint32_t s : outputs)
    if (s >= ns || !is_written(s)) bad("an output names no slot");
}

std::string Program::str() const {
  std::ostringstream o;
  o << "program: " << inputs.size() << " inputs, " << outputs.size() << " outputs, " << code.size() << " instructions, "
    << constants.size() << " constants, workspace " << workspace_bytes << " bytes";
  if (!loops.empty())
    o << ", " << loops.size() << (loops.size() == 1 ? " fused loop, " : " fused loops, ") << block_buffers
      << " block buffers of " << kBlockBytes << " bytes";
  o << "\n";
  for (std::size_t i = 0; i < inputs.size(); ++i)
    o << "  " << slot_name(inputs[i]) << " = input " << i << " : " << type_str(slots[inputs[i]]) << "\n";
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const Slot& sl = slots[s];
    if (sl.kind == SlotKind::constant) {
      o << "  " << slot_name(std::uint32_t(s)) << " = const : " << type_str(sl);
      const Val& c = constants[std::size_t(sl.index)];
      if (c.shape().size() <= 4) {
        o << " [";
        for (std::int64_t j = 0; j < c.shape().size(); ++j)
          o << (j ? ", " : "") << (c.dtype() == DType::f64 ? c.ptr<double>()[j] : double(c.ptr<float>()[j]));
        o << "]";
      }
      o << "\n";
    }
  }
  std::vector<std::vector<std::uint32_t>> views_of(slots.size());
  for (std::size_t s = 0; s < slots.size(); ++s)
    if (slots[s].kind == SlotKind::view) views_of[std::size_t(slots[s].index)].push_back(std::uint32_t(s));
  const char* indent = "  ";
  auto show_views = [&](std::uint32_t s) {
    for (std::uint32_t v : views_of[s])
      o << indent << slot_name(v) << " = view " << slot_name(s) << " : " << type_str(slots[v]) << "\n";
  };
  for (std::uint32_t s : inputs) show_views(s);
  for (std::size_t s = 0; s < slots.size(); ++s)
    if (slots[s].kind == SlotKind::constant) show_views(std::uint32_t(s));
  std::size_t next_loop = 0;
  for (std::size_t i = 0; i < code.size(); ++i) {
    const Instr& ins = code[i];
    const Slot& os = slots[ins.out];
    const bool looping = next_loop < loops.size() && i >= loops[next_loop].begin;
    if (looping && i == loops[next_loop].begin)
      o << "  loop over " << loops[next_loop].elements << " elements, " << kBlockElements << " at a time {\n";
    indent = looping ? "    " : "  ";
    o << indent << slot_name(ins.out) << " = " << op_name(ins.op) << "(";
    for (int j = 0; j < ins.nin; ++j) o << (j ? ", " : "") << slot_name(args[ins.in + j]);
    const std::string at = attr_str(ins.op, attrs[ins.attr]);
    if (!at.empty()) o << "; " << at;
    o << ") : " << type_str(os);
    if (os.kind == SlotKind::temp && os.index >= 0) o << " @" << os.index;
    if (os.kind == SlotKind::block) o << " @block" << os.index;
    o << "\n";
    show_views(ins.out);
    if (looping && i + 1 == loops[next_loop].end) {
      o << "  }\n";
      ++next_loop;
    }
  }
  o << "  return ";
  for (std::size_t k = 0; k < outputs.size(); ++k) o << (k ? ", " : "") << slot_name(outputs[k]);
  o << "\n";
  return o.str();
}

std::string Program::to_dot() const {
  std::ostringstream o;
  o << "digraph program {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n";
  auto src = [&](std::uint32_t s) {
    while (slots[s].kind == SlotKind::view) s = static_cast<std::uint32_t>(slots[s].index);
    return s;
  };
  for (std::size_t i = 0; i < inputs.size(); ++i)
    o << "  s" << inputs[i] << " [shape=box, style=filled, fillcolor=\"#dbeafe\", label=\"input " << i << "\\n"
      << type_str(slots[inputs[i]]) << "\"];\n";
  for (std::size_t s = 0; s < slots.size(); ++s)
    if (slots[s].kind == SlotKind::constant)
      o << "  s" << s << " [shape=box, style=filled, fillcolor=\"#f3f4f6\", label=\"const\\n"
        << type_str(slots[s]) << "\"];\n";
  std::size_t next_loop = 0;
  for (std::size_t i = 0; i < code.size(); ++i) {
    const Instr& ins = code[i];
    const bool looping = next_loop < loops.size() && i >= loops[next_loop].begin;
    if (looping && i == loops[next_loop].begin)
      o << "  subgraph cluster_loop" << next_loop << " {\n  style=dashed; label=\"fused loop over "
        << loops[next_loop].elements << " elements\";\n";
    o << "  s" << ins.out << " [shape=ellipse, label=\"" << op_name(ins.op);
    const std::string at = attr_str(ins.op, attrs[ins.attr]);
    if (!at.empty()) o << "\\n" << at;
    o << "\\n" << type_str(slots[ins.out]) << "\"];\n";
    for (int j = 0; j < ins.nin; ++j) o << "  s" << src(args[ins.in + j]) << " -> s" << ins.out << ";\n";
    if (looping && i + 1 == loops[next_loop].end) {
      o << "  }\n";
      ++next_loop;
    }
  }
  for (std::size_t k = 0; k < outputs.size(); ++k)
    o << "  out" << k << " [shape=box, style=filled, fillcolor=\"#dcfce7\", label=\"output " << k << "\"];\n  s"
      << src(outputs[k]) << " -> out" << k << ";\n";
  o << "}\n";
  return o.str();
}

}  // namespace matgrad
