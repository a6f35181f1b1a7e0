// SPDX-License-Identifier: MIT
// Compiled programs: a traced graph, with its gradient, linearised into a flat array of small
// instruction records over value slots, optimised, given a memory plan, and replayed without
// graph nodes, reference counts or allocations (Note [compiled programs] in
// cpp/src/program/build.cpp).
#pragma once

#include <matgrad/node.hpp>
#include <matgrad/value.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace matgrad {

/// Where a program's value lives.
enum class SlotKind : std::uint8_t {
  input,     ///< an argument of the call (index: its position)
  constant,  ///< a value captured when the program was built (index: in Program::constants)
  temp,      ///< computed by an instruction (index: its byte offset in the workspace)
  view,      ///< another slot's storage under another shape (index: that slot)
  block,     ///< an intermediate of a fused loop, never stored whole (index: the loop's block buffer)
};

/// A value of a program: its dtype, its shape and where it lives. A batched slot holds k values
/// of `shape`, stored as the rows of a (k, shape.size()) matrix (the batched sweeps of jacobian
/// and hessian, Note [batched sweeps]).
struct Slot {
  SlotKind kind = SlotKind::temp;
  DType dtype = DType::f64;
  Shape shape{};
  std::int64_t batch = 0;  ///< 0: one value; k > 0: a batch of k
  std::int64_t index = -1;
  /// Elements stored: shape.size(), times the batch size.
  std::int64_t elements() const { return shape.size() * (batch ? batch : 1); }
  std::size_t bytes() const { return std::size_t(elements()) * itemsize(dtype); }
};

/// One instruction: slot `out` = op(slots args[in], ..., args[in + nin - 1]) with attribute
/// attrs[attr]. It runs on batches when one of its inputs (and so its output) is batched.
struct Instr {
  OpId op{};
  std::uint16_t nin = 0;
  std::uint32_t attr = 0;
  std::uint32_t in = 0;
  std::uint32_t out = 0;
};

/// A fused loop (Note [fused loops] in cpp/src/program/fuse.cpp): instructions [begin, end), each
/// elementwise over `elements` elements, run block by block, every instruction on one block of
/// Program::kBlockElements elements before the next block, so that the intermediates
/// (SlotKind::block) stay in cache and only the loop's operands and results go through memory.
struct Loop {
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  std::int64_t elements = 0;
};

/// A compiled program. Build one with compile_graph (or the transforms below); it is immutable
/// afterwards, so several threads may run it at once (each gets a workspace of its own), each
/// with input values of its own: a Val's buffer count is not atomic, so one Val must not be
/// copied on two threads at once.
class Program {
 public:
  std::vector<Slot> slots;
  std::vector<Instr> code;
  std::vector<std::uint32_t> args;     ///< the input slots of every instruction, back to back
  std::vector<Attr> attrs;             ///< attrs[0] is the default Attr
  std::vector<Val> constants;
  std::vector<std::uint32_t> inputs;   ///< the slot of each argument
  std::vector<std::uint32_t> outputs;  ///< the slot of each result
  std::size_t workspace_bytes = 0;     ///< temporaries, as the memory plan lays them out
  std::vector<Loop> loops;             ///< the fused loops, in code order, disjoint
  std::uint32_t block_buffers = 0;     ///< the loops' block buffers, kBlockBytes each
  static constexpr std::int64_t kBlockElements = 512;
  static constexpr std::size_t kBlockBytes = 4096;  ///< kBlockElements of the widest dtype
  std::uint64_t id = 0;                ///< unique in the process (the per-thread workspace cache's key)

  Program();
  /// The readable text form: one line per slot and instruction.
  std::string str() const;
  /// Graphviz DOT text of the program's dataflow.
  std::string to_dot() const;

  /// Run the program on `inputs` (one value per argument, of the traced shapes and dtypes,
  /// read, never written): fresh values for the results, nothing else allocated once this
  /// thread's workspace exists. Value-dependent errors (a singular matrix) are thrown as eager
  /// evaluation throws them; an interrupt (matgrad::interrupt) stops it with Interrupted.
  std::vector<Val> run(const std::vector<Val>& inputs) const;

  /// Check the program is well formed (slot kinds and indices, arities, every instruction's
  /// shape and dtype by its op's rules): a ValueError naming what is wrong. run() relies on it;
  /// compile_graph and load_programs call it.
  void validate() const;
};

/// Statistics of this thread's replays (for tests): workspaces made, pooled buffers allocated
/// while replaying (0 once the workspace exists), instructions run.
struct ReplayStats {
  std::int64_t workspaces = 0;
  std::int64_t pool_allocations = 0;
  std::int64_t instructions = 0;
};
ReplayStats replay_stats();

/// The program computing `outputs` from `inputs` by the graph behind them. `inputs` are leaves;
/// every leaf that is not one is a constant, its value captured now. With `optimize`, the passes
/// run (optimize_program).
Program compile_graph(const std::vector<NodeRef>& inputs, const std::vector<NodeRef>& outputs, bool optimize = true);

/// Programs for the transforms of the scalar (or any, for jacobian) output `out` with respect to
/// inputs[argnums...] (the other inputs are read but not differentiated):
///   value_and_grad  results: out, then d out / d inputs[a] for each a in argnums
///   jacobian        results: d out / d inputs[a], each (out.size, inputs[a].size), C order
///   hessian         results: the blocks H[i][j] = d2 out / d inputs[a_i] d inputs[a_j], row by row
/// (`op` names the transform in errors: "value_and_grad", "grad", ...)
Program compile_value_and_grad(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                               bool optimize = true, const char* op = "value_and_grad");
Program compile_jacobian(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                         bool optimize = true);
Program compile_hessian(const std::vector<NodeRef>& inputs, const NodeRef& out, const std::vector<int>& argnums,
                        bool optimize = true);

// ---- the passes (each its own function; optimize_program runs them in order) ----

/// Drop instructions whose results nothing uses.
void eliminate_dead_code(Program& p);
/// Merge instructions that compute the same op of the same slots with the same attribute.
void eliminate_common_subexpressions(Program& p);
/// Evaluate instructions whose inputs are all constants, now; their results become constants.
void fold_constants(Program& p);
/// Rewrite what needs no work: x * 1, x + 0, transpose(transpose(x)), reshape chains, the sum of a
/// broadcast, a cast to the same dtype, products with an identity seed batch.
void simplify(Program& p);
/// Fuse runs of elementwise instructions over the same number of elements into loops (reordering
/// the code, as dependencies allow, to make the runs long); their intermediates become block
/// slots. The kernels are the ops' own, called on a block at a time.
void fuse_elementwise(Program& p);
/// The memory plan: each temporary gets an offset in the workspace, reusing the space of values
/// no longer needed (in place for elementwise ops whose input dies there).
void plan_memory(Program& p);
/// All of the above (fusion last), then the memory plan.
void optimize_program(Program& p);

/// A versioned binary archive of programs (docs/compile.md describes the format): each entry a
/// key (the caller's signature string), a kind ("value_and_grad", "jacobian", ...) and a program.
struct ProgramArchive {
  struct Entry {
    std::string key;
    std::string kind;
    std::shared_ptr<const Program> program;
  };
  std::vector<int> argnums;
  std::string meta;  ///< free text kept with the archive (the Python package keeps its settings here)
  std::vector<Entry> entries;
};
std::string save_programs(const ProgramArchive& a);
/// A ValueError naming what is wrong for a truncated, corrupt, empty or foreign archive.
ProgramArchive load_programs(const std::string& bytes);

}  // namespace matgrad
