// SPDX-License-Identifier: MIT
// The optimisation passes over a program, each a small function, and the memory plan.
#include <matgrad/error.hpp>
#include <matgrad/program.hpp>

#include "../ops/registry.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace matgrad {

namespace {

std::uint32_t root(const Program& p, std::uint32_t s) {
  while (p.slots[s].kind == SlotKind::view) s = static_cast<std::uint32_t>(p.slots[s].index);
  return s;
}

// Replace every use of slot `from` by slot `to` (same shape, dtype and batch), everywhere.
struct Substitution {
  std::vector<std::uint32_t> to;
  explicit Substitution(std::size_t n) : to(n) {
    for (std::size_t i = 0; i < n; ++i) to[i] = std::uint32_t(i);
  }
  std::uint32_t operator()(std::uint32_t s) const {
    while (to[s] != s) s = to[s];
    return s;
  }
  void apply(Program& p) const {
    for (std::uint32_t& a : p.args) a = (*this)(a);
    for (std::uint32_t& o : p.outputs) o = (*this)(o);
    for (Slot& s : p.slots)
      if (s.kind == SlotKind::view) s.index = (*this)(std::uint32_t(s.index));
  }
};

bool same_value_type(const Slot& a, const Slot& b) {
  return a.shape == b.shape && a.dtype == b.dtype && a.batch == b.batch;
}

// The attribute fields op reads, compared (CSE).
bool same_attr(OpId op, const Attr& a, const Attr& b) {
  const std::uint8_t f = opdef(op).attrs;
  return (!(f & kAttrS) || std::memcmp(&a.s, &b.s, sizeof(double)) == 0) && (!(f & kAttrAxis) || a.axis == b.axis) &&
         (!(f & kAttrFlags) || (a.ta == b.ta && a.tb == b.tb)) && (!(f & kAttrDtype) || a.dtype == b.dtype) &&
         (!(f & kAttrShape) || a.shape == b.shape) && (!(f & kAttrOffset) || a.offset == b.offset) &&
         (!(f & kAttrOffset2) || a.offset2 == b.offset2);
}

// Remove slots, constants and attributes nothing refers to, renumbering the rest.
void compact(Program& p) {
  const std::size_t ns = p.slots.size();
  std::vector<char> keep(ns, 0);
  auto mark = [&](std::uint32_t s) {
    for (;;) {
      keep[s] = 1;
      if (p.slots[s].kind != SlotKind::view) break;
      s = static_cast<std::uint32_t>(p.slots[s].index);
    }
  };
  for (std::uint32_t s : p.inputs) mark(s);
  for (std::uint32_t s : p.outputs) mark(s);
  for (const Instr& ins : p.code) {
    mark(ins.out);
    for (int j = 0; j < ins.nin; ++j) mark(p.args[ins.in + j]);
  }
  // Slots keep their order, except that a view waits for what it views: a substitution may have
  // pointed it at a later slot (a view of broadcast_to(v) to v's own shape becomes a view of v),
  // and a view must come after its target (Program::validate).
  std::vector<std::uint32_t> renum(ns, 0);
  std::vector<char> placed(ns, 0);
  std::vector<std::vector<std::uint32_t>> waiting(ns);
  std::vector<Slot> slots;
  std::vector<Val> constants;
  std::vector<std::uint32_t> ready;
  for (std::size_t s0 = 0; s0 < ns; ++s0) {
    if (!keep[s0]) continue;
    const Slot& first = p.slots[s0];
    if (first.kind == SlotKind::view && !placed[std::size_t(first.index)]) {
      waiting[std::size_t(first.index)].push_back(std::uint32_t(s0));
      continue;
    }
    ready.assign(1, std::uint32_t(s0));
    while (!ready.empty()) {
      const std::uint32_t s = ready.back();
      ready.pop_back();
      renum[s] = std::uint32_t(slots.size());
      placed[s] = 1;
      Slot sl = p.slots[s];
      if (sl.kind == SlotKind::constant) {
        constants.push_back(p.constants[std::size_t(sl.index)]);
        sl.index = std::int64_t(constants.size() - 1);
      } else if (sl.kind == SlotKind::view) {
        sl.index = renum[std::size_t(sl.index)];
      }
      slots.push_back(sl);
      ready.insert(ready.end(), waiting[s].rbegin(), waiting[s].rend());
    }
  }
  std::vector<Attr> attrs{Attr{}};
  std::vector<std::uint32_t> args;
  for (Instr& ins : p.code) {
    const std::uint32_t first = std::uint32_t(args.size());
    for (int j = 0; j < ins.nin; ++j) args.push_back(renum[p.args[ins.in + j]]);
    ins.in = first;
    ins.out = renum[ins.out];
    attrs.push_back(p.attrs[ins.attr]);
    ins.attr = std::uint32_t(attrs.size() - 1);
  }
  for (std::uint32_t& s : p.inputs) s = renum[s];
  for (std::uint32_t& s : p.outputs) s = renum[s];
  p.slots = std::move(slots);
  p.constants = std::move(constants);
  p.attrs = std::move(attrs);
  p.args = std::move(args);
}

bool all_equal(const Val& v, double x) {
  const std::int64_t n = v.shape().size();
  if (v.dtype() == DType::f64) {
    for (std::int64_t i = 0; i < n; ++i)
      if (v.ptr<double>()[i] != x) return false;
  } else {
    for (std::int64_t i = 0; i < n; ++i)
      if (v.ptr<float>()[i] != float(x)) return false;
  }
  return true;
}

// The constant behind slot s when it is a constant filled with x.
bool is_filled(const Program& p, std::uint32_t s, double x) {
  const Slot& r = p.slots[root(p, s)];
  return r.kind == SlotKind::constant && all_equal(p.constants[std::size_t(r.index)], x);
}

// Whether slot s is a scaled identity seed: a batch of k values of k elements each, the rows of
// c I with c != 0 (the seed of a Jacobian's or Hessian's batched sweep, possibly scaled by a
// folded constant), possibly seen as another shape. Sets c.
bool is_identity_seed(const Program& p, std::uint32_t s, double& scale) {
  const Slot& sl = p.slots[s];
  const Slot& r = p.slots[root(p, s)];
  if (r.kind != SlotKind::constant || !sl.batch || sl.shape.size() != sl.batch) return false;
  const Val& c = p.constants[std::size_t(r.index)];
  const std::int64_t k = sl.batch;
  auto at = [&](std::int64_t i) { return c.dtype() == DType::f64 ? c.ptr<double>()[i] : double(c.ptr<float>()[i]); };
  scale = at(0);
  if (scale == 0 || !std::isfinite(scale)) return false;
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < k; ++j)
      if (at(i * k + j) != (i == j ? scale : 0.0)) return false;
  return true;
}

// The value of a constant slot (not a batch) whose elements are all one value, or false.
bool uniform_constant(const Program& p, std::uint32_t s, double& v) {
  const Slot& sl = p.slots[s];
  const Slot& r = p.slots[root(p, s)];
  if (r.kind != SlotKind::constant || sl.batch) return false;
  const Val& c = p.constants[std::size_t(r.index)];
  const std::int64_t n = sl.shape.size();
  const std::size_t w = itemsize(c.dtype());
  const auto* b = static_cast<const unsigned char*>(c.data());
  if (n < 1) return false;
  for (std::int64_t i = 1; i < n; ++i)  // bit for bit: 0.0 and -0.0 differ here
    if (std::memcmp(b, b + std::size_t(i) * w, w) != 0) return false;
  v = c.dtype() == DType::f64 ? c.ptr<double>()[0] : double(c.ptr<float>()[0]);
  return true;
}

// The value of a constant slot of one element (and no batch), or false.
bool single_constant(const Program& p, std::uint32_t s, double& v) {
  const Slot& sl = p.slots[s];
  const Slot& r = p.slots[root(p, s)];
  if (r.kind != SlotKind::constant || sl.batch || sl.shape.size() != 1) return false;
  const Val& c = p.constants[std::size_t(r.index)];
  v = c.dtype() == DType::f64 ? c.ptr<double>()[0] : double(c.ptr<float>()[0]);
  return true;
}

}  // namespace

void eliminate_dead_code(Program& p) {
  std::vector<char> used(p.slots.size(), 0);
  for (std::uint32_t s : p.outputs) used[root(p, s)] = 1;
  std::vector<Instr> kept;
  for (std::size_t i = p.code.size(); i-- > 0;) {
    const Instr& ins = p.code[i];
    if (!used[ins.out]) continue;
    for (int j = 0; j < ins.nin; ++j) used[root(p, p.args[ins.in + j])] = 1;
    kept.push_back(ins);
  }
  std::reverse(kept.begin(), kept.end());
  p.code = std::move(kept);
  compact(p);
}

void eliminate_common_subexpressions(Program& p) {
  Substitution sub(p.slots.size());
  // equal constants
  std::vector<std::uint32_t> consts;
  for (std::size_t s = 0; s < p.slots.size(); ++s) {
    const Slot& sl = p.slots[s];
    if (sl.kind != SlotKind::constant) continue;
    const Val& v = p.constants[std::size_t(sl.index)];
    bool merged = false;
    for (std::uint32_t c : consts) {
      const Slot& cl = p.slots[c];
      const Val& w = p.constants[std::size_t(cl.index)];
      if (same_value_type(sl, cl) && v.shape().size() == w.shape().size() &&
          std::memcmp(v.data(), w.data(), sl.bytes()) == 0) {
        sub.to[s] = c;
        merged = true;
        break;
      }
    }
    if (!merged && consts.size() < 4096) consts.push_back(std::uint32_t(s));
  }
  // equal views: same root, same shape and batch
  std::map<std::tuple<std::uint32_t, std::int64_t, std::int64_t, int, std::int64_t>, std::uint32_t> views;
  // equal instructions: same op, inputs and attribute fields
  std::unordered_map<std::uint64_t, std::vector<std::size_t>> seen;
  std::vector<Instr> kept;
  for (std::size_t s = 0; s < p.slots.size(); ++s) {
    Slot& sl = p.slots[s];
    if (sl.kind != SlotKind::view) continue;
    sl.index = sub(std::uint32_t(sl.index));
  }
  for (const Instr& ins0 : p.code) {
    Instr ins = ins0;
    for (int j = 0; j < ins.nin; ++j) p.args[ins.in + j] = sub(p.args[ins.in + j]);
    // views of one root under one shape are one value
    for (int j = 0; j < ins.nin; ++j) {
      const std::uint32_t a = p.args[ins.in + j];
      const Slot& sl = p.slots[a];
      if (sl.kind != SlotKind::view) continue;
      auto key = std::make_tuple(root(p, a), sl.shape.rows, sl.shape.cols, int(sl.shape.ndim), sl.batch);
      auto it = views.find(key);
      if (it == views.end())
        views[key] = a;
      else
        p.args[ins.in + j] = it->second;
    }
    std::uint64_t h = ins.op.v * 1000003ull + ins.nin;
    for (int j = 0; j < ins.nin; ++j) h = h * 1000003ull + p.args[ins.in + j];
    bool dup = false;
    for (std::size_t k : seen[h]) {
      const Instr& o = kept[k];
      if (o.op != ins.op || o.nin != ins.nin || !same_value_type(p.slots[o.out], p.slots[ins.out]) ||
          !same_attr(ins.op, p.attrs[o.attr], p.attrs[ins.attr]))
        continue;
      bool same = true;
      for (int j = 0; j < ins.nin && same; ++j) same = p.args[o.in + j] == p.args[ins.in + j];
      if (same) {
        sub.to[ins.out] = o.out;
        dup = true;
        break;
      }
    }
    if (dup) continue;
    seen[h].push_back(kept.size());
    kept.push_back(ins);
  }
  p.code = std::move(kept);
  sub.apply(p);
  compact(p);
}

void fold_constants(Program& p) {
  std::vector<Instr> kept;
  for (const Instr& ins : p.code) {
    bool constant = true;
    for (int j = 0; j < ins.nin && constant; ++j)
      constant = p.slots[root(p, p.args[ins.in + j])].kind == SlotKind::constant;
    if (!constant) {
      kept.push_back(ins);
      continue;
    }
    const Slot os = p.slots[ins.out];
    Val out = Val::empty(os.batch ? Shape::matrix(os.batch, os.shape.size()) : os.shape, os.dtype);
    SmallArray<Val> in(ins.nin);
    SmallArray<BVal> bin(ins.nin);
    for (int j = 0; j < ins.nin; ++j) {
      const std::uint32_t a = p.args[ins.in + j];
      const Slot& sl = p.slots[a];
      const Val& c = p.constants[std::size_t(p.slots[root(p, a)].index)];
      in[j] = Val(c.data(), sl.batch ? Shape::matrix(sl.batch, sl.shape.size()) : sl.shape, sl.dtype);
      bin[j] = BVal{in[j], sl.batch, sl.shape};
    }
    try {
      if (out.shape().size() == 0) {  // Note [empty results] in registry.cpp
      } else if (os.batch)
        run_batched(ins.op, bin.p, ins.nin, p.attrs[ins.attr], nullptr, os.batch, os.shape, out, nullptr);
      else
        opdef(ins.op).forward(KernelArgs{p.attrs[ins.attr], in.p, ins.nin, out, nullptr});
    } catch (const Error&) {  // a value error (a singular constant): leave it to the replay
      kept.push_back(ins);
      continue;
    }
    Slot& s = p.slots[ins.out];
    s.kind = SlotKind::constant;
    s.index = std::int64_t(p.constants.size());
    p.constants.push_back(std::move(out));
  }
  p.code = std::move(kept);
  compact(p);
}

// A product with a matrix of one repeated value u (the ones of a sum's cotangent): every row (u on
// the left) or column (u on the right) of the result is u times the other operand's column or row
// sums. It becomes sum(z, axis) [* u], seen as a row or column, broadcast to the result: O(n^2)
// instead of a GEMM. The instructions go to `kept`; false if the product is not of that kind.
bool uniform_matmul(Program& p, const Instr& ins, std::vector<Instr>& kept, std::vector<std::int64_t>& writer,
                    Substitution& sub) {
  const std::uint32_t x = p.args[ins.in], y = p.args[ins.in + 1];
  const Attr a = p.attrs[ins.attr];
  const Slot os = p.slots[ins.out];
  double u = 0;
  const bool left = uniform_constant(p, x, u);
  if (!left && !uniform_constant(p, y, u)) return false;
  const std::uint32_t z = left ? y : x;
  const Slot zs = p.slots[z];
  if (os.batch || zs.batch || p.slots[x].shape.ndim != 2 || p.slots[y].shape.ndim != 2 || os.shape.ndim != 2 ||
      zs.dtype != os.dtype)
    return false;
  // u on the left: column sums of op(z) (z's rows summed, or its columns when transposed), a row;
  // u on the right: row sums of op(z), a column
  const bool zt = left ? a.tb : a.ta;
  const std::int32_t axis = (left != zt) ? 0 : 1;
  auto add = [&](OpId op, std::uint32_t in, const Attr& at, const Shape& shape) {
    Slot t;
    t.dtype = os.dtype;
    t.shape = shape;
    p.slots.push_back(t);
    sub.to.push_back(std::uint32_t(sub.to.size()));
    writer.push_back(std::int64_t(kept.size()));
    Instr i;
    i.op = op;
    i.nin = 1;
    i.in = std::uint32_t(p.args.size());
    p.args.push_back(in);
    p.attrs.push_back(at);
    i.attr = std::uint32_t(p.attrs.size() - 1);
    i.out = std::uint32_t(p.slots.size() - 1);
    kept.push_back(i);
    return i.out;
  };
  const std::int64_t len = left ? os.shape.cols : os.shape.rows;
  Attr sa;
  sa.axis = axis;
  std::uint32_t v = add(ops::sum, z, sa, Shape::vector(len));
  if (u != 1.0) {
    Attr ma;
    ma.s = u;
    v = add(ops::mul_s, v, ma, Shape::vector(len));
  }
  Slot view;  // the sums as a row or a column
  view.kind = SlotKind::view;
  view.dtype = os.dtype;
  view.shape = left ? Shape::matrix(1, len) : Shape::matrix(len, 1);
  view.index = v;
  p.slots.push_back(view);
  sub.to.push_back(std::uint32_t(sub.to.size()));
  writer.push_back(-1);
  Instr b;
  b.op = ops::broadcast_to;
  b.nin = 1;
  b.in = std::uint32_t(p.args.size());
  p.args.push_back(std::uint32_t(p.slots.size() - 1));
  Attr ba;
  ba.shape = os.shape;
  p.attrs.push_back(ba);
  b.attr = std::uint32_t(p.attrs.size() - 1);
  b.out = ins.out;
  writer[ins.out] = std::int64_t(kept.size());
  kept.push_back(b);
  return true;
}

void simplify(Program& p) {
  Substitution sub(p.slots.size());
  std::vector<Instr> kept;
  // the instruction that wrote each temp slot, for transpose(transpose(x)) and neg(neg(x))
  std::vector<std::int64_t> writer(p.slots.size(), -1);
  // results an instruction now writes in another shape: the view later readers see instead
  std::unordered_map<std::uint32_t, std::uint32_t> reshaped;
  auto seen_as = [&](std::uint32_t s) {
    s = sub(s);
    const auto it = reshaped.find(s);
    return it == reshaped.end() ? s : it->second;
  };
  for (const Instr& ins0 : p.code) {
    Instr ins = ins0;
    for (int j = 0; j < ins.nin; ++j) p.args[ins.in + j] = seen_as(p.args[ins.in + j]);
    const Attr& a = p.attrs[ins.attr];
    const Slot os = p.slots[ins.out];
    const std::uint32_t x = p.args[ins.in];
    auto same_as = [&](std::uint32_t s) { return same_value_type(p.slots[s], os); };
    std::int64_t replace = -1;  // the slot the instruction's result equals
    const OpId op = ins.op;
    if ((op == ops::mul_s || op == ops::div_s || op == ops::pow_s) && a.s == 1.0 && same_as(x)) {
      replace = x;  // x * 1, x / 1, x ** 1
    } else if (op == ops::add_s && a.s == 0.0 && same_as(x)) {
      replace = x;  // x + 0
    } else if (op == ops::alias && same_as(x)) {
      replace = x;
    } else if ((op == ops::broadcast_to || op == ops::sum_to || op == ops::reshape) && same_as(x)) {
      replace = x;  // to the shape it has
    } else if (op == ops::reshape || (op == ops::transpose && os.shape.ndim < 2)) {
      // a new shape of the same elements: a view, no copy
      const Slot& xs = p.slots[x];
      if (xs.elements() == os.elements() && xs.batch == os.batch) {
        Slot v = os;
        v.kind = SlotKind::view;
        v.index = root(p, x);
        p.slots[ins.out] = v;
        writer[ins.out] = -1;
        continue;
      }
    } else if ((op == ops::transpose || op == ops::neg) && writer[root(p, x)] >= 0) {
      const Instr& w = kept[std::size_t(writer[root(p, x)])];
      const std::uint32_t y = p.args[w.in];
      if (w.op == op && p.slots[x].kind != SlotKind::view && same_as(y)) replace = y;  // f(f(y)) = y
    } else if (op == ops::matmul) {
      const std::uint32_t y = p.args[ins.in + 1];
      double c = 0;
      const bool right = single_constant(p, y, c), left = !right && single_constant(p, x, c);
      const std::uint32_t z = right ? x : y;  // the other operand
      const Slot& zs = p.slots[z];
      const bool zt = right ? a.ta : a.tb;
      if ((left || right) && zs.batch == os.batch && zs.dtype == os.dtype &&
          (!zt || zs.shape.ndim < 2 || zs.shape.rows == 1 || zs.shape.cols == 1)) {
        // a product with a 1 x 1 constant, the other operand's elements in their order (not
        // transposed, or a row or column): a scale of the other operand, seen in the result's shape
        p.args[ins.in] = z;
        ins.op = ops::mul_s;
        ins.nin = 1;
        Attr sa;
        sa.s = c;
        p.attrs.push_back(sa);
        ins.attr = std::uint32_t(p.attrs.size() - 1);
        if (!same_as(z)) {  // the scale writes z's shape; later readers see a view in the result's
          Slot v = os;
          v.kind = SlotKind::view;
          v.index = ins.out;
          p.slots[ins.out].shape = zs.shape;
          reshaped[ins.out] = std::uint32_t(p.slots.size());
          p.slots.push_back(v);
          sub.to.push_back(std::uint32_t(sub.to.size()));
          writer.push_back(-1);
        }
      } else if (p.slots[x].batch != p.slots[y].batch && is_identity_seed(p, p.slots[x].batch ? x : y, c)) {
        // a product with the (scaled) identity seed batch: each member a row or column of the
        // other operand
        static const OpId seed_matmul = op_id("seed_matmul");
        const bool left = p.slots[x].batch != 0;
        Attr sa = a;
        sa.s = c;
        sa.offset = left ? 0 : 1;
        sa.shape = p.slots[left ? x : y].shape;
        if (!left) std::swap(p.args[ins.in], p.args[ins.in + 1]);
        ins.op = seed_matmul;
        p.attrs.push_back(sa);
        ins.attr = std::uint32_t(p.attrs.size() - 1);
      } else if (uniform_matmul(p, ins, kept, writer, sub)) {
        continue;
      }
    } else if (op == ops::mul && ins.nin == 2) {  // a product with ones: the other operand
      const std::uint32_t y = p.args[ins.in + 1];
      if (is_filled(p, x, 1.0) && same_as(y) && p.slots[x].batch == 0)
        replace = y;
      else if (is_filled(p, y, 1.0) && same_as(x) && p.slots[y].batch == 0)
        replace = x;
    } else if (op == ops::add && ins.nin == 2) {  // a sum with zeros: the other operand
      const std::uint32_t y = p.args[ins.in + 1];
      if (is_filled(p, x, 0.0) && same_as(y) && p.slots[x].batch == 0)
        replace = y;
      else if (is_filled(p, y, 0.0) && same_as(x) && p.slots[y].batch == 0)
        replace = x;
    }
    if (replace < 0 && ins.nin == 2 && (op == ops::add || op == ops::sub || op == ops::mul || op == ops::div)) {
      // an operand broadcast from one element while the other has the result's shape: the
      // element itself (the op broadcasts it), and the broadcast is left to dead-code elimination
      for (int j = 0; j < 2 && !os.batch; ++j) {
        const std::uint32_t b = p.args[ins.in + j], other = p.args[ins.in + 1 - j];
        const std::int64_t w = p.slots[b].kind == SlotKind::temp ? writer[b] : -1;
        if (w < 0 || kept[std::size_t(w)].op != ops::broadcast_to || !same_as(other) || p.slots[b].batch) continue;
        const std::uint32_t src = p.args[kept[std::size_t(w)].in];
        if (p.slots[src].elements() == 1 && !p.slots[src].batch && p.slots[src].dtype == os.dtype)
          p.args[ins.in + j] = src;
      }
    }
    if (replace < 0 && ins.nin == 2 && (op == ops::add || op == ops::sub || op == ops::mul || op == ops::div)) {
      // an operand that is one value repeated (a broadcast cotangent, a filled constant): the
      // op with that value as its scalar, one input fewer to read (the same numbers: x - v is
      // x + (-v), and + and * commute, in IEEE arithmetic)
      static const OpId rdiv_s = op_id("rdiv_s");
      const std::uint32_t y = p.args[ins.in + 1];
      double v = 0;
      std::int64_t z = -1;
      OpId to{};
      if (same_as(x) && uniform_constant(p, y, v)) {
        z = x;
        to = op == ops::mul ? ops::mul_s : op == ops::div ? ops::div_s : ops::add_s;
        if (op == ops::sub) v = -v;
      } else if (same_as(y) && uniform_constant(p, x, v)) {
        z = y;
        to = op == ops::mul ? ops::mul_s : op == ops::div ? rdiv_s : op == ops::sub ? ops::rsub_s : ops::add_s;
      }
      if (z >= 0) {
        p.args[ins.in] = std::uint32_t(z);
        ins.op = to;
        ins.nin = 1;
        Attr sa;
        sa.s = v;
        p.attrs.push_back(sa);
        ins.attr = std::uint32_t(p.attrs.size() - 1);
      }
    }
    if (replace >= 0) {
      sub.to[ins.out] = std::uint32_t(replace);
      continue;
    }
    writer[ins.out] = std::int64_t(kept.size());
    kept.push_back(ins);
  }
  p.code = std::move(kept);
  sub.apply(p);
  for (std::uint32_t& o : p.outputs) o = seen_as(o);
  compact(p);
}

void plan_memory(Program& p) {
  const std::size_t ns = p.slots.size(), n = p.code.size();
  // the last instruction that reads each temp (through views); outputs live to the end
  std::vector<std::int64_t> last(ns, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const Instr& ins = p.code[i];
    for (int j = 0; j < ins.nin; ++j) last[root(p, p.args[ins.in + j])] = std::int64_t(i);
  }
  // a fused loop is one step (Note [fused loops] in fuse.cpp): what it reads or writes lives to
  // its end, and its members write nothing in place
  std::vector<char> in_loop(n, 0);
  for (const Loop& L : p.loops)
    for (std::uint32_t i = L.begin; i < L.end; ++i) {
      in_loop[i] = 1;
      const Instr& ins = p.code[i];
      for (int j = 0; j < ins.nin; ++j) {
        const std::uint32_t r = root(p, p.args[ins.in + j]);
        last[r] = std::max(last[r], std::int64_t(L.end) - 1);
      }
      last[ins.out] = std::max(last[ins.out], std::int64_t(L.end) - 1);
    }
  for (std::uint32_t s : p.outputs) last[root(p, s)] = std::int64_t(n);
  // free blocks of the workspace, by offset; each temp takes the first block that fits
  std::map<std::size_t, std::size_t> free;  // offset -> bytes
  std::size_t top = 0;
  auto round = [](std::size_t b) { return (std::max<std::size_t>(b, 1) + 63) / 64 * 64; };
  auto release = [&](std::size_t off, std::size_t bytes) {
    auto it = free.emplace(off, bytes).first;
    auto next = std::next(it);
    if (next != free.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free.erase(next);
    }
    if (it != free.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free.erase(it);
        it = prev;
      }
    }
    if (it->first + it->second == top) {
      top = it->first;
      free.erase(it);
    }
  };
  std::vector<std::vector<std::uint32_t>> dies(n + 1);
  for (std::size_t i = 0; i < n; ++i) {
    const Instr& ins = p.code[i];
    Slot& os = p.slots[ins.out];
    if (os.kind == SlotKind::block) {  // in its loop's block buffers
      for (std::uint32_t s : dies[i]) release(std::size_t(p.slots[s].index), round(p.slots[s].bytes()));
      continue;
    }
    // In place: an elementwise op (each result element reads only the operand elements at its
    // own index) writes over an operand of its size and dtype that dies here.
    const BatchKind kind = opdef(ins.op).batch;
    if ((kind == BatchKind::unary || kind == BatchKind::binary) && !in_loop[i]) {
      std::int64_t reuse = -1;
      for (int j = 0; j < ins.nin && reuse < 0; ++j) {
        const std::uint32_t a = p.args[ins.in + j], r = root(p, a);
        const Slot& rs = p.slots[r];
        if (rs.kind == SlotKind::temp && last[r] == std::int64_t(i) && rs.dtype == os.dtype &&
            rs.elements() == os.elements() && p.slots[a].elements() == os.elements())
          reuse = r;
      }
      if (reuse >= 0) {
        std::vector<std::uint32_t>& d = dies[i];
        d.erase(std::find(d.begin(), d.end(), std::uint32_t(reuse)));  // the result owns the block now
        os.index = p.slots[std::size_t(reuse)].index;
        const std::int64_t end = last[ins.out];
        dies[std::size_t(end < 0 ? std::int64_t(i) : end)].push_back(ins.out);
        for (std::uint32_t s : dies[i]) release(std::size_t(p.slots[s].index), round(p.slots[s].bytes()));
        continue;
      }
    }
    const std::size_t bytes = round(os.bytes());
    std::size_t off = top;
    for (auto it = free.begin(); it != free.end(); ++it)
      if (it->second >= bytes) {
        off = it->first;
        const std::size_t rest = it->second - bytes;
        free.erase(it);
        if (rest) free.emplace(off + bytes, rest);
        break;
      }
    if (off == top) top += bytes;
    os.index = std::int64_t(off);
    p.workspace_bytes = std::max(p.workspace_bytes, top);
    const std::int64_t end = last[p.code[i].out];
    // a result nothing reads dies at once; the others after their last reader
    dies[std::size_t(end < 0 ? std::int64_t(i) : end)].push_back(p.code[i].out);
    for (std::uint32_t s : dies[i]) release(std::size_t(p.slots[s].index), round(p.slots[s].bytes()));
  }
  p.workspace_bytes = std::max(p.workspace_bytes, top);
}

void optimize_program(Program& p) {
  for (int round = 0; round < 4; ++round) {
    const std::size_t before = p.code.size();
    fold_constants(p);
    simplify(p);
    eliminate_common_subexpressions(p);
    eliminate_dead_code(p);
    if (p.code.size() == before) break;
  }
  p.validate();
  fuse_elementwise(p);
  plan_memory(p);
}

}  // namespace matgrad
