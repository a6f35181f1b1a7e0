// SPDX-License-Identifier: MIT
// Fusion of elementwise instructions into loops over blocks (Note [fused loops]).
#include <matgrad/program.hpp>

#include "../ops/registry.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <queue>
#include <vector>

namespace matgrad {

// Note [fused loops]
// An elementwise chain run one instruction at a time reads and writes every intermediate in
// full: with vectors of 10^4 elements each instruction streams 160-240 KB through the caches
// (W7's normal log-density: 11 such passes). fuse_elementwise turns a run of elementwise
// instructions over the same number of elements into a Loop that the replay runs block by
// block: each member on elements [j, j + kBlockElements) before the next block. The
// intermediates nobody outside the loop reads become block slots, which hold one block at a
// time in a small buffer that stays in the L1 cache; only the loop's operands and its escaping
// results go through memory, once.
//
// The members run their ops' own forward kernels on block-sized views (a one-element operand
// whole, as the kernels broadcast it), so a vectorised kernel library plugs in unchanged, and
// the results are those of the unfused program bit for bit: a block starts at a multiple of
// kBlockElements, so SIMD packets and scalar tails fall on the same elements (the test
// Fusion.ResultsEqualTheUnfusedProgramBitForBit holds it to that).
//
// Which instructions join: BatchKind unary or binary ops (each result element reads only the
// operand elements at its own index), unbatched, of more than one element, whose operands have
// as many elements as the result or one. To make the runs long the pass reorders the code (a
// list schedule that keeps the dependencies): while a run is open it takes the earliest ready
// instruction that can join it; otherwise the earliest ready one that cannot join any run, so
// that a run starts once the values it needs exist.
//
// The memory plan (plan_memory) treats a loop as one step: every temporary a loop reads or
// writes lives from the loop's start to its end at least, and no member writes in place over a
// temporary. (A block of one member's result must not land on memory a later block of another
// member still reads.) Block buffers are assigned here, in place where an operand dies.

namespace {

std::uint32_t root_of(const Program& p, std::uint32_t s) {
  while (p.slots[s].kind == SlotKind::view) s = static_cast<std::uint32_t>(p.slots[s].index);
  return s;
}

// The element count a fusable instruction runs over, or 0 if it cannot join a loop.
std::int64_t fusable(const Program& p, const Instr& ins) {
  const BatchKind k = opdef(ins.op).batch;
  if ((k != BatchKind::unary && k != BatchKind::binary) || ins.nin > 2) return 0;
  const Slot& os = p.slots[ins.out];
  if (os.batch || os.elements() < 2 || os.kind != SlotKind::temp) return 0;
  for (int j = 0; j < ins.nin; ++j) {
    const Slot& s = p.slots[p.args[ins.in + j]];
    if (s.batch || (s.elements() != os.elements() && s.elements() != 1)) return 0;
  }
  return os.elements();
}

// Reorder p.code (a topological order in, a topological order out) so that instructions that can
// fuse follow each other.
void schedule(Program& p) {
  const std::size_t n = p.code.size();
  std::vector<std::int64_t> writer(p.slots.size(), -1);
  for (std::size_t i = 0; i < n; ++i) writer[p.code[i].out] = std::int64_t(i);
  std::vector<std::vector<std::uint32_t>> users(n);
  std::vector<int> waiting(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const Instr& ins = p.code[i];
    for (int j = 0; j < ins.nin; ++j) {
      const std::int64_t w = writer[root_of(p, p.args[ins.in + j])];
      if (w < 0) continue;
      users[std::size_t(w)].push_back(std::uint32_t(i));
      ++waiting[i];
    }
  }
  // the class of each instruction: its element count and dtype if it can join a loop, else 0
  std::vector<std::int64_t> cls(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t w = fusable(p, p.code[i]);
    cls[i] = w ? w * 2 + (p.slots[p.code[i].out].dtype == DType::f32) : 0;
  }
  using Heap = std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<std::uint32_t>>;
  std::map<std::int64_t, Heap> ready;  // ready instructions by class, earliest first
  auto make_ready = [&](std::uint32_t i) { ready[cls[i]].push(i); };
  for (std::size_t i = 0; i < n; ++i)
    if (!waiting[i]) make_ready(std::uint32_t(i));
  std::vector<Instr> code;
  code.reserve(n);
  std::int64_t open = 0;  // the class of the run being built, 0 for none
  while (code.size() < n) {
    auto it = ready.end();
    if (open) it = ready.find(open);  // the earliest ready instruction that joins the run
    if (it == ready.end() || it->second.empty()) it = ready.find(0);  // else one that joins none
    if (it == ready.end() || it->second.empty()) {  // else the earliest that starts a run
      it = ready.end();
      for (auto c = ready.begin(); c != ready.end(); ++c)
        if (!c->second.empty() && (it == ready.end() || c->second.top() < it->second.top())) it = c;
    }
    const std::uint32_t i = it->second.top();
    it->second.pop();
    code.push_back(p.code[i]);
    open = cls[i];
    for (std::uint32_t u : users[i])
      if (--waiting[u] == 0) make_ready(u);
  }
  // the operands back to back in the new order (the replay keeps per-operand state by position)
  std::vector<std::uint32_t> args;
  args.reserve(p.args.size());
  for (Instr& ins : code) {
    const std::uint32_t at = std::uint32_t(args.size());
    args.insert(args.end(), p.args.begin() + ins.in, p.args.begin() + ins.in + ins.nin);
    ins.in = at;
  }
  p.code = std::move(code);
  p.args = std::move(args);
}

}  // namespace

void fuse_elementwise(Program& p) {
  p.loops.clear();
  p.block_buffers = 0;
  const std::vector<Instr> code = p.code;
  const std::vector<std::uint32_t> args = p.args;
  schedule(p);
  const std::size_t n = p.code.size(), ns = p.slots.size();
  // the runs: two or more consecutive fusable instructions of one element count and dtype
  for (std::size_t i = 0; i < n;) {
    const std::int64_t w = fusable(p, p.code[i]);
    std::size_t e = i + 1;
    if (w)
      while (e < n && fusable(p, p.code[e]) == w && p.slots[p.code[e].out].dtype == p.slots[p.code[i].out].dtype) ++e;
    if (w && e - i >= 2) p.loops.push_back(Loop{std::uint32_t(i), std::uint32_t(e), w});
    i = e;
  }
  if (p.loops.empty()) {
    p.code = code;  // nothing fuses: keep the order the memory plan was tuned on
    p.args = args;
    return;
  }
  // which loop (if any) each instruction is in, and each slot is written in
  std::vector<std::int64_t> loop_of(n, -1), written_in(ns, -1);
  for (std::size_t l = 0; l < p.loops.size(); ++l)
    for (std::uint32_t i = p.loops[l].begin; i < p.loops[l].end; ++i) {
      loop_of[i] = std::int64_t(l);
      written_in[p.code[i].out] = std::int64_t(l);
    }
  // a result escapes its loop when it is returned, viewed, or read by an instruction outside it
  std::vector<char> escapes(ns, 0);
  for (std::uint32_t s : p.outputs) escapes[root_of(p, s)] = 1;
  for (std::size_t s = 0; s < ns; ++s)
    if (p.slots[s].kind == SlotKind::view) escapes[root_of(p, std::uint32_t(s))] = 1;
  std::vector<std::int64_t> last(ns, -1);  // the last reader of each slot
  for (std::size_t i = 0; i < n; ++i) {
    const Instr& ins = p.code[i];
    for (int j = 0; j < ins.nin; ++j) {
      const std::uint32_t s = p.args[ins.in + j];
      last[s] = std::int64_t(i);
      if (written_in[s] >= 0 && loop_of[i] != written_in[s]) escapes[s] = 1;
    }
  }
  // block buffers: the intermediates of each loop, reusing a buffer once its value is dead
  for (const Loop& L : p.loops) {
    std::vector<std::uint32_t> free;
    std::uint32_t used = 0;
    for (std::uint32_t i = L.begin; i < L.end; ++i) {
      const Instr& ins = p.code[i];
      std::int64_t buffer = -1;
      for (int j = 0; j < ins.nin; ++j) {  // operands that die here give their buffers back
        const std::uint32_t s = p.args[ins.in + j];
        Slot& sl = p.slots[s];
        if (sl.kind != SlotKind::block || last[s] != std::int64_t(i)) continue;
        if (buffer < 0)
          buffer = sl.index;  // in place: the same element of the same block
        else if (sl.index != buffer && std::find(free.begin(), free.end(), std::uint32_t(sl.index)) == free.end())
          free.push_back(std::uint32_t(sl.index));
      }
      Slot& os = p.slots[ins.out];
      if (escapes[ins.out] || last[ins.out] < 0) {  // stored whole (and a dead result stays a temp)
        if (buffer >= 0) free.push_back(std::uint32_t(buffer));
        continue;
      }
      if (buffer < 0) {
        if (!free.empty()) {
          buffer = free.back();
          free.pop_back();
        } else {
          buffer = used++;
        }
      }
      os.kind = SlotKind::block;
      os.index = buffer;
    }
    p.block_buffers = std::max(p.block_buffers, used);
  }
}

}  // namespace matgrad
