// SPDX-License-Identifier: MIT
// Building programs: a graph linearised into instructions, and sweeps recorded into them.
#include <matgrad/autodiff.hpp>
#include <matgrad/error.hpp>
#include <matgrad/program.hpp>

#include "../ops/registry.hpp"
#include "../sweep.hpp"
#include "builder.hpp"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

// Note [compiled programs]
// compile() traces the user's function once per signature (Note [tracing]) into the ordinary
// graph. A Program is that graph linearised: one instruction record {op, attribute, input slots,
// output slot} per node, in an order where every slot is written before it is read, over value
// slots that are the call's inputs, constants captured at build time, or temporaries. Gradients
// are recorded, not traced: the reverse sweep runs its usual VJPs in a fourth algebra,
// RecordAlg, whose values are slots and whose ops append instructions (Note [one VJP, four
// algebras]), seeded with a constant 1 (value_and_grad) or an identity batch (jacobian, and
// hessian, whose first derivative is built as a graph first and then swept as a batch).
// Programs are then optimised by small passes (passes.cpp), given a memory plan, and replayed
// by a loop over the records (replay.cpp) that touches no node and allocates nothing.

ProgramBuilder::ProgramBuilder() { p.attrs.push_back(Attr{}); }

std::uint32_t ProgramBuilder::add_slot(const Slot& s) {
  p.slots.push_back(s);
  return static_cast<std::uint32_t>(p.slots.size() - 1);
}

void ProgramBuilder::add_input(const NodeRef& n) {
  if (!n) throw ValueError("compile: an input is null");
  if (!n->is_leaf()) throw ValueError("compile: input of shape " + n->shape.str() + " is not a leaf");
  if (!n->requires_grad && !n->traced)
    throw ValueError("compile: input " + std::to_string(p.inputs.size()) + " of shape " + n->shape.str() +
                     " neither requires a gradient nor was traced, so the ops on it were not recorded (their "
                     "values would be baked in): make it with requires_grad=true");
  if (slot_of.count(n.get())) throw ValueError("compile: input " + std::to_string(p.inputs.size()) + " is given twice");
  Slot s;
  s.kind = SlotKind::input;
  s.dtype = n->dtype;
  s.shape = n->shape;
  s.index = static_cast<std::int64_t>(p.inputs.size());
  const std::uint32_t id = add_slot(s);
  p.inputs.push_back(id);
  slot_of[n.get()] = id;
}

std::uint32_t ProgramBuilder::constant(const Val& v, const Shape& shape, std::int64_t batch) {
  // a copy of its own: what the program captured cannot change under it
  Val own = Val::empty(v.shape(), v.dtype());
  std::memcpy(own.data(), v.data(), std::size_t(v.shape().size()) * itemsize(v.dtype()));
  Slot s;
  s.kind = SlotKind::constant;
  s.dtype = v.dtype();
  s.shape = shape;
  s.batch = batch;
  s.index = static_cast<std::int64_t>(p.constants.size());
  p.constants.push_back(std::move(own));
  return add_slot(s);
}

std::uint32_t ProgramBuilder::attr(const Attr& a) {
  p.attrs.push_back(a);
  return static_cast<std::uint32_t>(p.attrs.size() - 1);
}

std::uint32_t ProgramBuilder::emit(OpId op, const std::uint32_t* in, int n, const Attr& a, const Slot& out) {
  Instr ins;
  ins.op = op;
  ins.nin = static_cast<std::uint16_t>(n);
  ins.attr = attr(a);
  ins.in = static_cast<std::uint32_t>(p.args.size());
  for (int i = 0; i < n; ++i) p.args.push_back(in[i]);
  ins.out = add_slot(out);
  p.code.push_back(ins);
  return ins.out;
}

std::uint32_t ProgramBuilder::view(std::uint32_t of, const Shape& shape, std::int64_t batch) {
  while (p.slots[of].kind == SlotKind::view) of = static_cast<std::uint32_t>(p.slots[of].index);
  Slot s;
  s.kind = SlotKind::view;
  s.dtype = p.slots[of].dtype;
  s.shape = shape;
  s.batch = batch;
  s.index = of;
  if (s.elements() != p.slots[of].elements())
    throw ShapeError("compile: a view of shape " + shape.str() + " does not fit slot " + std::to_string(of));
  return add_slot(s);
}

std::uint32_t ProgramBuilder::value(const Node* root) {
  auto found = slot_of.find(root);
  if (found != slot_of.end()) return found->second;
  // iterative post-order over parents (a 10^6-node chain must work)
  std::vector<std::pair<const Node*, int>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (n->nparents && i < n->nparents) {
      const Node* q = n->parent(i++).get();
      if (!slot_of.count(q)) stack.push_back({q, 0});
      continue;
    }
    const Node* x = n;
    stack.pop_back();
    if (slot_of.count(x)) continue;
    if (x->nparents == 0) {  // a leaf that is not an input, or a value computed from constants
      slot_of[x] = constant(x->value(), x->shape, 0);
      continue;
    }
    SmallArray<std::uint32_t> in(x->nparents);
    for (int k = 0; k < x->nparents; ++k) in[k] = slot_of.at(x->parent(k).get());
    Slot out;
    out.dtype = x->dtype;
    out.shape = x->shape;
    slot_of[x] = emit(x->op, in.p, x->nparents, x->attr, out);
  }
  return slot_of.at(root);
}

// ---- RecordAlg: the sweep's VJPs append instructions ----

PVal RecordAlg::apply(OpId o, const PVal* in, int n, const Attr& a, const FactorSlot*) {
  const OpDef& d = opdef(o);
  std::int64_t k = 0;
  for (int i = 0; i < n; ++i)
    if (in[i].k) k = in[i].k;
  SmallArray<Shape> ss(n);
  for (int i = 0; i < n; ++i) ss[i] = in[i].s;
  const Shape os = d.shape(a, ss.p, n);
  if (!os.representable()) fail_shapes(op_label(o), "give a result too large to represent", ss.p, n);
  const DType dt = d.dtype ? d.dtype(a, nullptr, n) : in[d.index_input == 0 ? 1 : 0].dtype;
  SmallArray<std::uint32_t> slots(n);
  for (int i = 0; i < n; ++i) {
    PVal x = in[i];
    if (k && d.batch == BatchKind::binary && !x.s.same_storage(os)) {  // Note [batched sweeps]: operands
      Attr ba;                                                         // of the output's shape first
      ba.shape = os;
      x = apply(ops::broadcast_to, &x, 1, ba);
    }
    slots[i] = static_cast<std::uint32_t>(x.slot);
  }
  Slot out;
  out.dtype = dt;
  out.shape = os;
  out.batch = k;
  return PVal{b_->emit(o, slots.p, n, a, out), k, os, dt};
}

PVal RecordAlg::on_node(OpId o, const Node& xn, std::initializer_list<PVal> rest, const Attr& a) {
  // Factorizations are shared by slot when the program runs: nothing special to record.
  const int n = 1 + static_cast<int>(rest.size());
  SmallArray<PVal> in(n);
  in[0] = input(xn);
  int i = 1;
  for (const PVal& v : rest) in[i++] = v;
  return apply(o, in.p, n, a);
}

PVal RecordAlg::reshape(const PVal& x, Shape s) {
  if (x.s == s) return x;
  return PVal{b_->view(static_cast<std::uint32_t>(x.slot), s, x.k), x.k, s, x.dtype};
}

PVal RecordAlg::input(const Node& p) { return PVal{b_->value(&p), 0, p.shape, p.dtype}; }
PVal RecordAlg::output(const Node& n) { return input(n); }

void RecordAlg::accumulate(PVal& slot, PVal&& v) { slot = slot ? add(slot, v) : std::move(v); }

// ---- the programs of the transforms ----

namespace {

void build_inputs(ProgramBuilder& b, const std::vector<NodeRef>& inputs) {
  for (const NodeRef& x : inputs) b.add_input(x);
}

std::vector<NodeRef> targets_of(const char* op, const std::vector<NodeRef>& inputs, const std::vector<int>& argnums) {
  if (argnums.empty()) throw ValueError(std::string(op) + ": argnums is empty");
  std::vector<NodeRef> t;
  for (int a : argnums) {
    if (a < 0 || a >= static_cast<int>(inputs.size()))
      throw ValueError(std::string(op) + ": argnums " + std::to_string(a) + " is out of range for " +
                       std::to_string(inputs.size()) + " inputs");
    if (!inputs[a]->requires_grad)
      throw GraphError(std::string(op) + ": input " + std::to_string(a) + " does not require a gradient");
    t.push_back(inputs[a]);
  }
  return t;
}

// A constant batch of k = s.size() seeds: the rows of the identity, each of shape s.
PVal identity_seed(ProgramBuilder& b, const Shape& s, DType dt) {
  const std::int64_t k = s.size();
  Val eye = Val::filled(Shape::matrix(k, k), dt, 0.0);
  for (std::int64_t i = 0; i < k; ++i) {
    if (dt == DType::f64)
      eye.ptr<double>()[i * k + i] = 1.0;
    else
      eye.ptr<float>()[i * k + i] = 1.0f;
  }
  return PVal{b.constant(eye, s, k), k, s, dt};
}

// d out / d targets as (out.size, target.size) blocks, one batched reverse sweep recorded.
std::vector<std::uint32_t> record_jacobian(ProgramBuilder& b, const NodeRef& out, const std::vector<NodeRef>& targets) {
  std::vector<std::uint32_t> res;
  const std::int64_t m = out->shape.size();
  auto zeros = [&](const NodeRef& x) {
    return b.constant(Val::filled(Shape::matrix(m, x->shape.size()), x->dtype, 0.0), Shape::matrix(m, x->shape.size()),
                      0);
  };
  if (!out->requires_grad || m == 0) {
    for (const NodeRef& x : targets) res.push_back(zeros(x));
    return res;
  }
  PVal seed = identity_seed(b, out->shape, out->dtype);
  detail::Sweep<RecordAlg> s(RecordAlg(b), out.get(), seed, &targets);
  for (const NodeRef& x : targets) {
    const PVal* a = s.adjoint(x.get());
    if (!a) {
      res.push_back(zeros(x));
      continue;
    }
    PVal v = detail::fit(s.alg, *a, *x);  // the input's dtype and shape
    res.push_back(b.view(static_cast<std::uint32_t>(v.slot), Shape::matrix(m, x->shape.size()), 0));
  }
  return res;
}

Program finish(ProgramBuilder& b, const std::vector<std::uint32_t>& outputs, bool optimize) {
  b.p.outputs = outputs;
  b.p.validate();
  if (optimize)
    optimize_program(b.p);
  else
    plan_memory(b.p);
  return std::move(b.p);
}

}  // namespace

Program compile_graph(const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& outputs, bool optimize) {
  ProgramBuilder b;
  build_inputs(b, inputs);
  std::vector<std::uint32_t> outs;
  for (const NodeRef& y : outputs) {
    if (!y) throw ValueError("compile: an output is null");
    outs.push_back(b.value(y.get()));
  }
  return finish(b, outs, optimize);
}

Program compile_value_and_grad(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                               bool optimize, const char* op) {
  check_scalar_output(op, out->shape);
  const std::vector<NodeRef> targets = targets_of(op, inputs, argnums);
  ProgramBuilder b;
  build_inputs(b, inputs);
  std::vector<std::uint32_t> outs{b.value(out.get())};
  if (!out->requires_grad) {
    for (const NodeRef& x : targets) outs.push_back(b.constant(Val::filled(x->shape, x->dtype, 0.0), x->shape, 0));
    return finish(b, outs, optimize);
  }
  PVal seed{b.constant(Val::filled(out->shape, out->dtype, 1.0), out->shape, 0), 0, out->shape, out->dtype};
  detail::Sweep<RecordAlg> s(RecordAlg(b), out.get(), seed, &targets);
  for (const NodeRef& x : targets) {
    const PVal* a = s.adjoint(x.get());
    outs.push_back(a ? static_cast<std::uint32_t>(detail::fit(s.alg, *a, *x).slot)
                     : b.constant(Val::filled(x->shape, x->dtype, 0.0), x->shape, 0));
  }
  return finish(b, outs, optimize);
}

Program compile_jacobian(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                         bool optimize) {
  const std::vector<NodeRef> targets = targets_of("jacobian", inputs, argnums);
  ProgramBuilder b;
  build_inputs(b, inputs);
  return finish(b, record_jacobian(b, out, targets), optimize);
}

Program compile_hessian(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                        bool optimize) {
  check_scalar_output("hessian", out->shape);
  const std::vector<NodeRef> targets = targets_of("hessian", inputs, argnums);
  ProgramBuilder b;
  build_inputs(b, inputs);
  std::vector<NodeRef> grads;
  {
    TraceMode trace;  // the gradient graph records what it computes from the inputs, too
    grads = grad_nodes(out, targets, nullptr, "hessian");
  }
  std::vector<std::uint32_t> outs;
  for (const NodeRef& g : grads)
    for (std::uint32_t h : record_jacobian(b, g, targets)) outs.push_back(h);
  return finish(b, outs, optimize);
}

}  // namespace matgrad
