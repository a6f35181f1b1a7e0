// SPDX-License-Identifier: MIT
// Running a program: a loop over its records (Note [compiled programs] in build.cpp).
#include <matgrad/error.hpp>
#include <matgrad/interrupt.hpp>
#include <matgrad/program.hpp>

#include "../ops/registry.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace matgrad {

namespace {

void skip_empty(const KernelArgs&) {}

std::atomic<std::uint64_t> g_next_program{1};
thread_local ReplayStats t_stats;

// The slot whose storage s uses.
std::uint32_t root_of(const Program& p, std::uint32_t s) {
  while (p.slots[s].kind == SlotKind::view) s = static_cast<std::uint32_t>(p.slots[s].index);
  return s;
}

enum : std::uint8_t { kWhole, kSlice, kBlock };

// A value as an instruction sees it: a batch as its (k, size) matrix, else its own shape.
Shape stored_shape(const Slot& s) { return s.batch ? Shape::matrix(s.batch, s.shape.size()) : s.shape; }

// Note [workspaces]
// Everything a replay writes lives in a workspace: the temporaries (one block laid out by the
// memory plan), the factorizations of this call, the scratch of batched GEMMs, and the views
// every instruction reads and writes, made once, so that the loop only patches the pointers of
// the call's inputs. One workspace per program and thread, made at the thread's first call and
// kept in a small per-thread cache (freed when the thread exits), so one program serves several
// threads at once without locks. The temporaries of every program a thread runs share that
// thread's arena, grown to the largest memory plan it has met: a thread that replays programs
// of many signatures in turn (shards of different sizes, batches of different lengths) holds
// the largest plan, not their sum. A thread runs one replay at a time, and nothing in the arena
// outlives a call (results are copied out or written straight into their own buffers). When
// the arena grows, a workspace made against the old one moves its views at its next call.
struct Workspace {
  std::uint64_t program = 0;
  unsigned char* base = nullptr;    ///< the temporaries: the arena this workspace's views point into
  std::size_t bytes = 0;            ///< ... and how far (the program's plan)
  Val blocks;                       ///< the fused loops' block buffers
  std::vector<unsigned char> scratch;
  std::vector<Val> in;              ///< per instruction input (Program::args order)
  std::vector<Val> out;             ///< per instruction
  /// How a fused loop's member sees each of its inputs (in) and its result (out): kWhole, kSlice
  /// or kBlock (Note [fused loops] in fuse.cpp).
  std::vector<std::uint8_t> in_mode, out_mode;
  std::vector<FactorSlot> factors;  ///< per instruction input (Program::args order)
  std::vector<std::shared_ptr<const Factor>> factor_of;  ///< per slot (only those factorized)
  std::vector<std::uint32_t> factored;                   ///< the slots factor_of may hold
  struct Patch {
    std::uint32_t arg;   ///< position in `in`
    std::uint32_t input; ///< argument of the call
  };
  std::vector<Patch> patches;
  std::vector<std::uint32_t> output_roots;
  /// Results an instruction writes straight into the caller's new value (no copy afterwards):
  /// per such output, the instruction writing it and the inputs (Program::args positions) that
  /// read it later, each with the shape it is read as.
  struct Direct {
    std::size_t output;
    std::size_t writer;
    std::vector<std::uint32_t> readers;
  };
  std::vector<Direct> direct;
  /// What the loop reads per instruction, resolved once.
  struct Step {
    ForwardFn forward;  ///< null for a batched instruction
    const Attr* attr;
    std::uint32_t in;
    std::uint16_t nin;
    bool poll;          ///< poll for an interrupt before this step (Note [interrupts in replays])
    std::int32_t loop;  ///< the fused loop starting here, or -1
  };
  std::vector<Step> steps;
};

void* slot_data(const Program& p, Workspace& ws, std::uint32_t s) {
  const Slot& r = p.slots[root_of(p, s)];
  switch (r.kind) {
    case SlotKind::constant:
      return p.constants[std::size_t(r.index)].data();
    case SlotKind::temp:
      return ws.base + r.index;
    case SlotKind::block:
      return static_cast<unsigned char*>(ws.blocks.data()) + std::size_t(r.index) * Program::kBlockBytes;
    default:
      return nullptr;  // an input: patched per call
  }
}

// This thread's arena (Note [workspaces]), at least `bytes` long.
unsigned char* arena(std::size_t bytes) {
  thread_local Val memory;
  thread_local std::size_t size = 0;
  if (bytes > size) {
    memory = Val();  // the old one first: the peak is the new size, not both
    memory = Val::empty(Shape::vector(std::int64_t((bytes + 7) / 8)), DType::f64);
    size = (bytes + 7) / 8 * 8;
  }
  return static_cast<unsigned char*>(memory.data());
}

// Point ws's views of its temporaries into the arena at `base` (it grew since ws last ran). Only
// views inside the old plan move: the others (inputs, results written in place, constants)
// point to memory that was alive beside the old arena, and the call re-points its inputs and
// results anyway.
void rebase(Workspace& ws, unsigned char* base) {
  const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(ws.base), hi = lo + ws.bytes;
  auto move = [&](Val& v) {
    const std::uintptr_t d = reinterpret_cast<std::uintptr_t>(v.data());
    if (v.data() && d >= lo && d < hi) v = Val(base + (d - lo), v.shape(), v.dtype());
  };
  for (Val& v : ws.in) move(v);
  for (Val& v : ws.out) move(v);
  ws.base = base;
}

std::unique_ptr<Workspace> make_workspace(const Program& p) {
  auto ws = std::make_unique<Workspace>();
  ws->program = p.id;
  ws->bytes = p.workspace_bytes;
  ws->base = arena(p.workspace_bytes);
  if (p.block_buffers)
    ws->blocks = Val::empty(Shape::vector(std::int64_t(p.block_buffers * Program::kBlockBytes / 8)), DType::f64);
  std::vector<std::int32_t> loop_at(p.code.size(), -1);
  std::vector<char> looped(p.code.size(), 0);
  for (std::size_t l = 0; l < p.loops.size(); ++l) {
    loop_at[p.loops[l].begin] = std::int32_t(l);
    for (std::uint32_t i = p.loops[l].begin; i < p.loops[l].end; ++i) looped[i] = 1;
  }
  auto mode = [&](std::uint32_t s) {
    const Slot& r = p.slots[root_of(p, s)];
    return r.kind == SlotKind::block ? kBlock : p.slots[s].elements() == 1 ? kWhole : kSlice;
  };
  std::int64_t scratch = 0;
  ws->factor_of.resize(p.slots.size());
  std::vector<char> factored(p.slots.size(), 0);
  auto factor_slot_of = [&](const Instr& ins, int i) -> std::int64_t {  // the root slot, or -1
    const std::uint32_t s = p.args[ins.in + i];
    return opdef(ins.op).factor_kind != FactorKind::none && i == 0 && !p.slots[s].batch ? std::int64_t(root_of(p, s))
                                                                                        : -1;
  };
  // FactorSlot::reused: more than one reader of a slot's factor of one kind
  std::map<std::pair<std::int64_t, FactorKind>, int> factor_readers;
  for (const Instr& ins : p.code)
    if (ins.nin > 0)
      if (const std::int64_t r = factor_slot_of(ins, 0); r >= 0) ++factor_readers[{r, opdef(ins.op).factor_kind}];
  long long work = 0;
  for (std::size_t at = 0; at < p.code.size(); ++at) {
    const Instr& ins = p.code[at];
    const OpDef& d = opdef(ins.op);
    const Slot& os = p.slots[ins.out];
    if (os.batch) {
      SmallArray<BVal> in(ins.nin);
      for (int i = 0; i < ins.nin; ++i) {
        const Slot& s = p.slots[p.args[ins.in + i]];
        in[i] = BVal{Val(), s.batch, s.shape};
      }
      scratch = std::max(scratch, batch_scratch_elements(ins.op, in.p, ins.nin, p.attrs[ins.attr], os.batch) *
                                      std::int64_t(itemsize(os.dtype)));
    }
    for (int i = 0; i < ins.nin; ++i) {
      const std::uint32_t s = p.args[ins.in + i];
      const std::uint32_t r = root_of(p, s);
      const Slot& sl = p.slots[s];
      ws->in.emplace_back(slot_data(p, *ws, s), stored_shape(sl), sl.dtype);
      ws->in_mode.push_back(looped[at] ? mode(s) : kWhole);
      if (p.slots[r].kind == SlotKind::input)
        ws->patches.push_back(
            {static_cast<std::uint32_t>(ws->in.size() - 1), static_cast<std::uint32_t>(p.slots[r].index)});
      FactorSlot f;
      if (factor_slot_of(ins, i) >= 0) {
        f.slot = &ws->factor_of[r];
        f.reused = factor_readers[{std::int64_t(r), d.factor_kind}] > 1;
        if (!factored[r]) ws->factored.push_back(r);
        factored[r] = 1;
      }
      ws->factors.push_back(f);
    }
    ws->out.emplace_back(slot_data(p, *ws, ins.out), stored_shape(os), os.dtype);
    ws->out_mode.push_back(looped[at] ? mode(ins.out) : kWhole);
    // an empty result computes nothing (Note [empty results] in registry.cpp)
    const ForwardFn fwd = stored_shape(os).size() == 0 ? skip_empty : d.forward;
    // Note [interrupts in replays]: a step polls once kInterruptStride units of work (one per
    // instruction, one more per kInterruptElements elements of its result) have run since the
    // last poll; fused loops also poll after each block.
    work += interrupt_work(stored_shape(os).size());
    const bool poll = work >= kInterruptStride;
    if (poll) work = 0;
    ws->steps.push_back({os.batch ? nullptr : fwd, &p.attrs[ins.attr], ins.in, ins.nin, poll, loop_at[at]});
  }
  ws->scratch.resize(std::size_t(scratch) + 64);
  for (std::uint32_t s : p.outputs) ws->output_roots.push_back(root_of(p, s));
  // outputs written by an instruction go straight to the result (the first output of a root;
  // a root returned twice is copied for the others), unless it is a batch (stored (k, size))
  std::vector<char> taken(p.slots.size(), 0);
  std::vector<std::int64_t> writer(p.slots.size(), -1);
  for (std::size_t i = 0; i < p.code.size(); ++i) writer[p.code[i].out] = std::int64_t(i);
  for (std::size_t k = 0; k < p.outputs.size(); ++k) {
    const std::uint32_t r = ws->output_roots[k];
    if (p.slots[r].kind != SlotKind::temp || taken[r] || p.slots[r].batch || writer[r] < 0 ||
        p.slots[p.outputs[k]].bytes() != p.slots[r].bytes())
      continue;
    taken[r] = 1;
    Workspace::Direct d{k, std::size_t(writer[r]), {}};
    for (std::size_t a = 0; a < p.args.size(); ++a)
      if (root_of(p, p.args[a]) == r) d.readers.push_back(std::uint32_t(a));
    ws->direct.push_back(std::move(d));
  }
  ++t_stats.workspaces;
  return ws;
}

// This thread's workspace for p (a small cache: programs used in turn keep theirs).
Workspace& workspace_for(const Program& p) {
  constexpr std::size_t kCached = 16;
  thread_local std::vector<std::unique_ptr<Workspace>> cache;
  for (std::size_t i = 0; i < cache.size(); ++i)
    if (cache[i]->program == p.id) {
      if (i) std::swap(cache[i], cache[0]);  // most recent first
      return *cache[0];
    }
  if (cache.size() >= kCached) cache.pop_back();
  cache.insert(cache.begin(), make_workspace(p));
  return *cache[0];
}

// The part of v a fused loop's member reads or writes for the block of `shape` at element `off`.
Val piece(const Val& v, std::uint8_t mode, std::int64_t off, const Shape& shape) {
  if (mode == kWhole) return Val(v.data(), v.shape(), v.dtype());
  unsigned char* d = static_cast<unsigned char*>(v.data());
  if (mode == kSlice) d += std::size_t(off) * itemsize(v.dtype());
  return Val(d, shape, v.dtype());
}

// A fused loop (Note [fused loops] in fuse.cpp): every member on one block, block after block.
void run_loop(const Loop& L, const Workspace& ws) {
  const Workspace::Step* step = ws.steps.data();
  for (std::int64_t off = 0; off < L.elements; off += Program::kBlockElements) {
    const Shape shape = Shape::vector(std::min(Program::kBlockElements, L.elements - off));
    for (std::uint32_t i = L.begin; i < L.end; ++i) {
      if (((i - L.begin) & (kInterruptStride - 1)) == kInterruptStride - 1) poll_interrupt();
      const Workspace::Step& st = step[i];
      Val in[2];
      for (int k = 0; k < st.nin; ++k) in[k] = piece(ws.in[st.in + k], ws.in_mode[st.in + k], off, shape);
      const Val out = piece(ws.out[i], ws.out_mode[i], off, shape);
      st.forward(KernelArgs{*st.attr, in, st.nin, out});
    }
    poll_interrupt();
  }
}

}  // namespace

ReplayStats replay_stats() { return t_stats; }

Program::Program() : id(g_next_program.fetch_add(1, std::memory_order_relaxed)) {}

std::vector<Val> Program::run(const std::vector<Val>& in) const {
  if (in.size() != inputs.size())
    throw TypeError("program: takes " + std::to_string(inputs.size()) + " inputs, got " + std::to_string(in.size()));
  for (std::size_t i = 0; i < in.size(); ++i) {
    const Slot& s = slots[inputs[i]];
    if (!in[i] || in[i].shape() != s.shape || in[i].dtype() != s.dtype)
      throw ShapeError("program: input " + std::to_string(i) + " has shape " +
                       (in[i] ? in[i].shape().str() + " " + dtype_name(in[i].dtype()) : std::string("(none)")) +
                       "; the program was built for shape " + s.shape.str() + " " + dtype_name(s.dtype));
  }
  Workspace& ws = workspace_for(*this);
  if (unsigned char* base = arena(workspace_bytes); base != ws.base) rebase(ws, base);
  for (const Workspace::Patch& pt : ws.patches) {
    const Val& v = ws.in[pt.arg];
    ws.in[pt.arg] = Val(in[pt.input].data(), v.shape(), v.dtype());
  }
  for (std::uint32_t s : ws.factored) ws.factor_of[s].reset();  // a factorization lasts one call
  // the results written in place: fresh values now, the loop's views pointed at them
  std::vector<Val> res(outputs.size());
  for (const Workspace::Direct& d : ws.direct) {
    const Slot& s = slots[outputs[d.output]];
    res[d.output] = Val::empty(stored_shape(s), s.dtype);
    Val& w = ws.out[d.writer];
    w = Val(res[d.output].data(), w.shape(), w.dtype());
    for (std::uint32_t a : d.readers) {
      Val& r = ws.in[a];
      r = Val(res[d.output].data(), r.shape(), r.dtype());
    }
  }
  const std::int64_t before = pool_allocations();
  const std::size_t n = code.size();
  const Workspace::Step* step = ws.steps.data();
  const Val* ins = ws.in.data();
  const FactorSlot* factors = ws.factors.data();
  for (std::size_t i = 0; i < n; ++i) {
    const Workspace::Step& st = step[i];
    if (st.poll) poll_interrupt();
    if (st.loop >= 0) {
      const Loop& L = loops[std::size_t(st.loop)];
      run_loop(L, ws);
      i = L.end - 1;
      continue;
    }
    if (st.forward) {
      st.forward(KernelArgs{*st.attr, ins + st.in, st.nin, ws.out[i], factors + st.in});
      continue;
    }
    const Slot& os = slots[code[i].out];
    SmallArray<BVal> bin(st.nin);
    for (int k = 0; k < st.nin; ++k) {
      const Slot& s = slots[args[st.in + k]];
      bin[k] = BVal{ins[st.in + k], s.batch, s.shape};
    }
    run_batched(code[i].op, bin.p, st.nin, *st.attr, factors + st.in, os.batch, os.shape, ws.out[i],
                ws.scratch.data() + (64 - reinterpret_cast<std::uintptr_t>(ws.scratch.data()) % 64) % 64);
  }
  t_stats.pool_allocations += pool_allocations() - before;
  t_stats.instructions += std::int64_t(n);
  // The other results are copied out of the workspace: many small ones (the gradients of a
  // scalar loop) into one block, each a view of it, a few into a buffer each (the Python
  // bindings hand such buffers to NumPy without a copy).
  constexpr std::size_t kOneBlock = 16;
  Val block;
  std::size_t at = 0;
  if (outputs.size() > kOneBlock) {
    std::size_t total = 0;
    for (std::size_t k = 0; k < outputs.size(); ++k)
      if (!res[k]) total += (slots[outputs[k]].bytes() + 63) / 64 * 64;
    block = Val::empty(Shape::vector(std::int64_t((total + 7) / 8)), DType::f64);
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (res[k]) continue;  // written in place
    const Slot& s = slots[outputs[k]];
    const Slot& r = slots[ws.output_roots[k]];
    const void* src = r.kind == SlotKind::input      ? in[std::size_t(r.index)].data()
                      : r.kind == SlotKind::constant ? constants[std::size_t(r.index)].data()
                                                     : ws.base + r.index;
    for (const Workspace::Direct& d : ws.direct)  // a root returned twice: from the first result
      if (ws.output_roots[d.output] == ws.output_roots[k]) src = res[d.output].data();
    Val v;
    if (block) {
      v = Val(static_cast<unsigned char*>(block.data()) + at, stored_shape(s), s.dtype, block.buffer());
      at += (s.bytes() + 63) / 64 * 64;
    } else {
      v = Val::empty(stored_shape(s), s.dtype);
    }
    std::memcpy(v.data(), src, s.bytes());
    res[k] = std::move(v);
  }
  return res;
}

}  // namespace matgrad
