// SPDX-License-Identifier: MIT
// Compiled programs (matgrad/program.hpp): each pass on its own, the memory plan, shared
// factorizations, threads, interrupts, validation and the archive. (Every registry case's
// programs are checked against eager in test_ops.cpp, CompiledProgramsMatchEager.)
#include "test_util.hpp"

#include "../src/ops/registry.hpp"  // BatchAlg, to test a batched kernel on its own

#include <matgrad/matgrad.hpp>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace mgtest {
namespace {

using matgrad::Program;

int count(const Program& p, const char* op) {
  int n = 0;
  for (const matgrad::Instr& ins : p.code) n += std::string(matgrad::op_name(ins.op)) == op;
  return n;
}

TEST(Passes, DeadCodeIsDropped) {
  NodeRef x = leaf(S(3), DType::f64, {1, 2, 3});
  NodeRef unused = matgrad::exp(x);  // computed while tracing, not an output
  NodeRef y = matgrad::sin(x);
  Program p = matgrad::compile_graph({x}, {y}, false);
  ASSERT_EQ(p.code.size(), 1u) << "exp of x is not reached from the output";
  // a dead instruction appended by hand is removed by the pass
  p.code.push_back(p.code[0]);
  p.code.back().out = std::uint32_t(p.slots.size());
  matgrad::Slot s = p.slots[p.code[0].out];
  p.slots.push_back(s);
  matgrad::eliminate_dead_code(p);
  EXPECT_EQ(p.code.size(), 1u);
  p.validate();
  EXPECT_TRUE(all_close(values(p.run({x->value()})[0]), values(y), Tol{0, 0}));
  (void)unused;
}

TEST(Passes, CommonSubexpressionsAreMerged) {
  NodeRef x = leaf(S(2, 2), DType::f64, {1, 2, 3, 4}), y = leaf(S(2, 2), DType::f64, {5, 6, 7, 8});
  NodeRef f = matgrad::sum(x * y) + matgrad::sum(x * y);  // x * y recorded twice
  Program p = matgrad::compile_graph({x, y}, {f}, false);
  EXPECT_EQ(count(p, "mul"), 2);
  matgrad::eliminate_common_subexpressions(p);
  matgrad::eliminate_dead_code(p);
  p.validate();
  EXPECT_EQ(count(p, "mul"), 1);
  EXPECT_EQ(count(p, "sum"), 1);
  matgrad::plan_memory(p);
  EXPECT_DOUBLE_EQ(values(p.run({x->value(), y->value()})[0])[0], 2 * (5 + 12 + 21 + 32));
}

TEST(Passes, ConstantsAreFolded) {
  NodeRef x = leaf(S(2), DType::f64, {1, 2});
  NodeRef c = leaf(S(2), DType::f64, {0.5, 0.25}, false);
  NodeRef f = x * matgrad::exp(c) + matgrad::sum(c * c);  // exp(c) and sum(c * c) need no input
  Program p = matgrad::compile_graph({x}, {f}, false);
  EXPECT_EQ(count(p, "exp"), 0) << "unrecorded ops on constants are constants already";
  // ops on constants recorded as instructions (e.g. the seeds of a sweep) are folded
  Program q = matgrad::compile_value_and_grad({x}, matgrad::sum(f * c), {0}, false);
  const std::size_t before = q.code.size();
  matgrad::fold_constants(q);
  q.validate();
  EXPECT_LE(q.code.size(), before);
  for (const matgrad::Instr& ins : q.code) {
    bool all_const = true;
    for (int j = 0; j < ins.nin; ++j) {
      std::uint32_t s = q.args[ins.in + j];
      while (q.slots[s].kind == matgrad::SlotKind::view) s = std::uint32_t(q.slots[s].index);
      all_const = all_const && q.slots[s].kind == matgrad::SlotKind::constant;
    }
    EXPECT_FALSE(all_const) << matgrad::op_name(ins.op) << " of constants only was not folded";
  }
  matgrad::plan_memory(q);
  const std::vector<Val> want = matgrad::grad_values(matgrad::sum(f * c), {x});
  EXPECT_TRUE(all_close(values(q.run({x->value()})[1]), values(want[0]), Tol{1e-15, 0}));
}

TEST(Passes, SimplificationRemovesWhatNeedsNoWork) {
  NodeRef x = leaf(S(2, 3), DType::f64, {1, 2, 3, 4, 5, 6});
  NodeRef f = matgrad::transpose(matgrad::transpose(x * 1.0 + 0.0));  // x
  NodeRef g = matgrad::reshape(matgrad::neg(matgrad::neg(x)), std::vector<std::int64_t>{3, 2});
  Program p = matgrad::compile_graph({x}, {f, g}, false);
  EXPECT_GT(p.code.size(), 4u);
  matgrad::simplify(p);
  matgrad::eliminate_dead_code(p);
  p.validate();
  EXPECT_EQ(p.code.size(), 0u) << p.str();
  matgrad::plan_memory(p);
  const std::vector<Val> r = p.run({x->value()});
  EXPECT_TRUE(all_close(values(r[0]), values(x), Tol{0, 0}));
  EXPECT_EQ(r[1].shape(), S(3, 2));
  EXPECT_TRUE(all_close(values(r[1]), values(x), Tol{0, 0}));
}

// A binary op with a constant of one repeated value becomes the op with a scalar: each of the
// eight forms, float64 and float32, bit for bit as eager; mixed 0.0 and -0.0 stay binary.
TEST(Passes, UniformConstantsBecomeScalars) {
  for (DType d : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_str(d));
    NodeRef x = leaf(Input{S(2, 3), {1.5, -2, 3, 0.25, -0.75, 6}}, d);
    NodeRef c = leaf(Input{S(2, 3), std::vector<double>(6, 1.7)}, d, false);
    NodeRef r = leaf(Input{S(3), std::vector<double>(3, -0.3)}, d, false);  // broadcast along rows
    NodeRef z = leaf(Input{S(2, 3), {0.0, -0.0, 0.0, 0.0, 0.0, 0.0}}, d, false);
    const std::vector<NodeRef> outs = {x + c, c + x, x - r, r - x, x * c, r * x, x / c, c / x, x * z};
    const char* want[] = {"add_s", "add_s", "add_s", "rsub_s", "mul_s", "mul_s", "div_s", "rdiv_s", "mul"};
    for (std::size_t i = 0; i < outs.size(); ++i) {
      Program p = matgrad::compile_graph({x}, {outs[i]});
      ASSERT_EQ(p.code.size(), 1u) << i << "\n" << p.str();
      EXPECT_STREQ(matgrad::op_name(p.code[0].op), want[i]) << i << "\n" << p.str();
      EXPECT_TRUE(all_close(values(p.run({x->value()})[0]), values(outs[i]), Tol{0, 0})) << i;
    }
  }
}

// A product with a matrix of one repeated value (sum(A B)'s cotangent products) becomes row or
// column sums broadcast: no matmul left, the same values as eager to rounding, either side, both
// flags, a scale of 1 and of 2.5, float64 and float32.
TEST(Passes, ProductsWithAUniformMatrixBecomeSums) {
  Rng rng(21);
  for (DType d : {DType::f64, DType::f32})
    for (double u : {1.0, 2.5})
      for (int form = 0; form < 8; ++form) {
        const bool left = form & 1, ta = form & 2, tb = form & 4;
        SCOPED_TRACE(std::string(dtype_str(d)) + " u=" + std::to_string(u) + " form " + std::to_string(form));
        // op(L) is 3 x 4, op(R) is 4 x 5
        const Shape ls = ta ? S(4, 3) : S(3, 4), rs = tb ? S(5, 4) : S(4, 5);
        const Shape us = left ? ls : rs, xs = left ? rs : ls;
        NodeRef x = leaf(rng.input(xs), d);
        NodeRef c = leaf(Input{us, std::vector<double>(std::size_t(us.size()), u)}, d, false);
        NodeRef y = left ? matgrad::matmul(c, x, ta, tb) : matgrad::matmul(x, c, ta, tb);
        Program p = matgrad::compile_graph({x}, {y});
        EXPECT_EQ(count(p, "matmul"), 0) << p.str();
        const Tol tol = d == DType::f64 ? Tol{1e-14, 1e-14} : Tol{1e-6, 1e-6};
        EXPECT_TRUE(all_close(values(p.run({x->value()})[0]), values(y), tol)) << p.str();
      }
}

// seed_matmul is the batched matmul with an identity seed: compare it with that product, the
// seed given as a constant, for either side, both flags, 1-D and 2-D operands, and a scaled seed.
TEST(Passes, IdentitySeedProductsEqualTheBatchedMatmul) {
  struct C {
    Shape seed, other;
    bool left, ta, tb;
  };
  const C cases[] = {{S(2, 3), S(3, 4), true, false, false},  {S(3, 2), S(3, 4), true, true, false},
                     {S(2, 3), S(4, 3), true, false, true},   {S(3, 2), S(4, 3), true, true, true},
                     {S(3, 2), S(4, 3), false, false, false}, {S(2, 3), S(4, 3), false, false, true},
                     {S(3, 2), S(3, 4), false, true, false},  {S(2, 3), S(3, 4), false, true, true},
                     {S(3), S(3, 4), true, false, false},     {S(4), S(3, 4), false, false, false},
                     {S(3), S(4, 3), true, false, true},      {S(4), S(4, 3), false, true, false}};
  Rng rng(9);
  int n = 0;
  for (const C& c : cases) {
    const double scale = n++ % 2 ? 1.0 : -2.5;
    SCOPED_TRACE(c.seed.str() + " " + c.other.str() + (c.left ? " left" : " right") + (c.ta ? " ta" : "") +
                 (c.tb ? " tb" : "") + " scale " + std::to_string(scale));
    const std::int64_t k = c.seed.size();
    Val eye = Val::filled(S(k, k), DType::f64, 0.0);
    for (std::int64_t i = 0; i < k; ++i) eye.ptr<double>()[i * k + i] = scale;
    NodeRef y = leaf(rng.input(c.other), DType::f64);
    matgrad::Attr a;
    a.ta = c.ta;
    a.tb = c.tb;
    const matgrad::BVal seed{eye, k, c.seed}, other{y->value(), 0, c.other};
    const matgrad::BVal in[2] = {c.left ? seed : other, c.left ? other : seed};
    const matgrad::BVal want = matgrad::BatchAlg().apply(opid("matmul"), in, 2, a);
    a.offset = c.left ? 0 : 1;
    a.shape = c.seed;
    a.s = scale;
    const matgrad::BVal sin[2] = {seed, other};
    const matgrad::BVal got = matgrad::BatchAlg().apply(opid("seed_matmul"), sin, 2, a);
    EXPECT_EQ(got.s, want.s);
    EXPECT_EQ(got.k, want.k);
    EXPECT_TRUE(all_close(values(got.v), values(want.v), Tol{0, 0}));
  }
}

TEST(Passes, JacobiansAndHessiansUseTheSeedProduct) {
  Rng rng(10);
  NodeRef b = leaf(rng.input(S(4, 3)), DType::f64);
  NodeRef k = matgrad::matmul(b, b, true, false);  // B^T B
  const matgrad::Program pj = matgrad::compile_jacobian({b}, k, {0});
  EXPECT_GE(count(pj, "seed_matmul"), 1) << pj.str();
  EXPECT_EQ(count(pj, "matmul"), 0) << pj.str();
  EXPECT_TRUE(all_close(values(pj.run({b->value()})[0]), values(matgrad::jacobian_values(k, {b})[0]), Tol{1e-14, 0}));
  NodeRef x = leaf(rng.input(S(5)), DType::f64), m = leaf(rng.input(S(5, 5)), DType::f64, false);
  // quad_form, and x^T (M x) as two products (whose second-order seed is a scaled identity)
  for (NodeRef q : {matgrad::quad_form(x, m), matgrad::matmul(x, matgrad::matmul(m, x))}) {
    NodeRef h = matgrad::sum(matgrad::sin(x)) + 0.5 * q + matgrad::logsumexp(x);
    const matgrad::Program ph = matgrad::compile_hessian({x}, h, {0});
    EXPECT_EQ(count(ph, "matmul"), 0) << ph.str();
    EXPECT_TRUE(
        all_close(values(ph.run({x->value()})[0]), values(matgrad::hessian_values(h, {x})[0][0]), Tol{1e-13, 1e-14}));
  }
}

TEST(MemoryPlan, TemporariesShareSpaceWhenTheirLivesDoNotOverlap) {
  NodeRef x = leaf(S(64), DType::f64, std::vector<double>(64, 0.5));
  NodeRef y = x;
  for (int i = 0; i < 20; ++i) y = matgrad::sin(y);  // each temporary dies at the next step
  Program p = matgrad::compile_graph({x}, {matgrad::sum(y)});
  EXPECT_EQ(p.code.size(), 21u);
  EXPECT_LE(p.workspace_bytes, 3 * 64 * 8u) << "a chain needs two live temporaries at a time (and the sum)";
  double want = 0.5;
  for (int i = 0; i < 20; ++i) want = std::sin(want);
  EXPECT_NEAR(values(p.run({x->value()})[0])[0], 64 * want, 1e-12);
}

TEST(MemoryPlan, ElementwiseOpsWriteOverAnOperandThatDiesThere) {
  NodeRef x = leaf(S(64), DType::f64, std::vector<double>(64, 0.5));
  NodeRef y = matgrad::sin(x);
  for (int i = 0; i < 20; ++i) y = i % 2 ? matgrad::exp(y) * 0.25 : y * y + 0.25;  // stays in (0, 1)
  // a still read after the instruction that could overwrite it: that one must not
  NodeRef a = matgrad::sin(x), b = matgrad::exp(a);
  Program p = matgrad::compile_graph({x}, {matgrad::sum(y), matgrad::sum(b * a)});
  // one block for the chain (written in place from sin to its end; two blocks otherwise), then
  // one for a and one for b (b * a writes over one of them; a third block otherwise), and the
  // two sums (64 bytes each)
  EXPECT_LE(p.workspace_bytes, 2 * 64 * 8u + 2 * 64u) << p.str();
  const std::vector<Val> r = p.run({x->value()});
  EXPECT_TRUE(all_close(values(r[0]), values(matgrad::sum(y)), Tol{0, 0}));
  EXPECT_TRUE(all_close(values(r[1]), values(matgrad::sum(b * a)), Tol{0, 0}));
}

// ---- fused loops ----

// p with its loops undone: every block slot a temp again, the memory plan made again.
Program unfused(Program p) {
  p.loops.clear();
  p.block_buffers = 0;
  for (matgrad::Slot& s : p.slots)
    if (s.kind == matgrad::SlotKind::block) s.kind = matgrad::SlotKind::temp;
  p.workspace_bytes = 0;
  matgrad::plan_memory(p);
  return p;
}

bool same_bits(const std::vector<Val>& a, const std::vector<Val>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (a[k].shape() != b[k].shape() || a[k].dtype() != b[k].dtype() ||
        std::memcmp(a[k].data(), b[k].data(), std::size_t(a[k].shape().size()) * itemsize(a[k].dtype())) != 0)
      return false;
  return true;
}

// The normal log-density and its gradient (W7's vector row): the elementwise work of the value
// and of the gradient becomes one loop, its intermediates block slots.
TEST(Fusion, ChainsBecomeOneLoop) {
  Rng rng(11);
  NodeRef x = leaf(rng.input(S(1100)), DType::f64), mu = matgrad::scalar(0.3), s = matgrad::scalar(1.7);
  NodeRef z = (x - mu) / s;
  NodeRef f = matgrad::sum(z * z) * -0.5 - (matgrad::log(s) + 0.9) * 1100.0;
  const Program p = matgrad::compile_value_and_grad({x, mu, s}, f, {0, 1, 2});
  EXPECT_NO_THROW(p.validate());
  ASSERT_EQ(p.loops.size(), 1u) << p.str();
  EXPECT_EQ(p.loops[0].elements, 1100);
  EXPECT_GE(p.loops[0].end - p.loops[0].begin, 8u) << p.str();
  EXPECT_GE(p.block_buffers, 1u);
  int blocks = 0;
  for (const matgrad::Slot& sl : p.slots) blocks += sl.kind == matgrad::SlotKind::block;
  EXPECT_GE(blocks, 4) << p.str();
  EXPECT_NE(p.str().find("loop over 1100 elements"), std::string::npos) << p.str();
  EXPECT_NE(p.to_dot().find("subgraph cluster_loop0"), std::string::npos);
  const Program q = unfused(p);
  // the intermediates take no workspace: only the loop's escaping results (4 vectors) and scalars
  EXPECT_LE(p.workspace_bytes, 4 * 1100 * 8 + 6 * 64u) << p.str();
  const std::vector<Val> in = {x->value(), mu->value(), s->value()};
  EXPECT_TRUE(same_bits(p.run(in), q.run(in)));
  const std::vector<Val> want = matgrad::grad_values(f, {x, mu, s});
  const std::vector<Val> got = p.run(in);
  EXPECT_TRUE(all_close(values(got[0]), values(f), Tol{1e-14, 0}));
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(all_close(values(got[std::size_t(k) + 1]), values(want[std::size_t(k)]), Tol{1e-13, 1e-13}));
}

// Random elementwise programs over sizes around the block (and one element, which never fuses),
// f64 and f32, with a reduction fed back as a broadcast scalar (two loops, temporaries read
// across them): fused results equal the unfused program's bit for bit and eager's.
TEST(Fusion, ResultsEqualTheUnfusedProgramBitForBit) {
  Rng rng(12);
  for (std::int64_t n : {1, 2, 7, 511, 512, 513, 1100, 4097})
    for (DType d : {DType::f64, DType::f32})
      for (int trial = 0; trial < 3; ++trial) {
        SCOPED_TRACE("n = " + std::to_string(n) + " " + dtype_name(d) + " trial " + std::to_string(trial));
        NodeRef x = leaf(rng.input(S(n), -1, 1), d), y = leaf(rng.input(S(n), 0.5, 2), d);
        NodeRef c = leaf(rng.input(S(), 0.5, 1.5), d);
        std::vector<NodeRef> vals = {x, y};
        auto pick = [&] { return vals[std::size_t(rng.uniform(0, double(vals.size()) - 1e-9))]; };
        for (int k = 0; k < 14; ++k) {
          const NodeRef a = pick(), b = pick();
          NodeRef r;
          switch (int(rng.uniform(0, 9.999))) {
            case 0:
              r = matgrad::sin(a);
              break;
            case 1:
              r = matgrad::exp(matgrad::tanh(a));
              break;
            case 2:
              r = a * b;
              break;
            case 3:
              r = a + b * c;
              break;
            case 4:
              r = a / (c + 1.0);
              break;
            case 5:
              r = matgrad::sqrt(matgrad::abs(a) + 0.5);
              break;
            case 6:
              r = matgrad::sigmoid(a) - b;
              break;
            case 7:
              r = a * matgrad::sum(b) * (1.0 / double(n));
              break;  // a reduction fed back
            case 8:
              r = matgrad::log(matgrad::abs(a) + 1.0);
              break;
            default:
              r = -a;
              break;
          }
          vals.push_back(r);
        }
        NodeRef f = matgrad::sum(vals.back() * vals[vals.size() - 2]);
        const Program p = matgrad::compile_value_and_grad({x, y, c}, f, {0, 1, 2});
        EXPECT_NO_THROW(p.validate());
        if (n == 1) {
          EXPECT_TRUE(p.loops.empty());
        } else {
          EXPECT_FALSE(p.loops.empty()) << p.str();
        }
        const std::vector<Val> in = {x->value(), y->value(), c->value()};
        const std::vector<Val> got = p.run(in);
        EXPECT_TRUE(same_bits(got, unfused(p).run(in))) << p.str();
        const Tol tol = d == DType::f64 ? Tol{1e-12, 1e-12} : Tol{2e-4, 2e-4};
        const std::vector<Val> want = matgrad::grad_values(f, {x, y, c});
        EXPECT_TRUE(all_close(values(got[0]), values(f), tol));
        for (int k = 0; k < 3; ++k)
          EXPECT_TRUE(all_close(values(got[std::size_t(k) + 1]), values(want[std::size_t(k)]), tol));
      }
}

TEST(Fusion, LoopsSurviveTheArchiveAndThreads) {
  Rng rng(13);
  NodeRef x = leaf(rng.input(S(3, 700)), DType::f64);
  NodeRef f = matgrad::sum(matgrad::sin(x) * matgrad::exp(-x * x) + matgrad::tanh(x));
  auto prog = std::make_shared<const Program>(matgrad::compile_value_and_grad({x}, f, {0}));
  ASSERT_FALSE(prog->loops.empty());
  matgrad::ProgramArchive a;
  a.argnums = {0};
  a.entries.push_back({"k", "value_and_grad", prog});
  const matgrad::ProgramArchive b = matgrad::load_programs(matgrad::save_programs(a));
  const Program& q = *b.entries.at(0).program;
  EXPECT_EQ(q.loops.size(), prog->loops.size()) << "the loops are made again on load";
  const std::vector<Val> want = prog->run({x->value()});
  EXPECT_TRUE(same_bits(q.run({x->value()}), want));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  // each thread its own input (Val counts are not atomic: Program's contract)
  std::vector<std::vector<Val>> inputs;
  for (int t = 0; t < 4; ++t) {
    const Val src = x->value();
    Val v = Val::empty(src.shape(), src.dtype());
    std::memcpy(v.data(), src.data(), static_cast<std::size_t>(src.shape().size()) * sizeof(double));
    inputs.push_back({v});
  }
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < 50; ++r)
        if (!same_bits(q.run(inputs[static_cast<std::size_t>(t)]), want)) ++bad;
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Fusion, AnInterruptStopsALongLoop) {
  NodeRef x = leaf(S(600), DType::f64, std::vector<double>(600, 0.5));
  NodeRef y = x;
  for (int i = 0; i < 5000; ++i) y = matgrad::sin(y);
  Program p = matgrad::compile_graph({x}, {y});
  ASSERT_EQ(p.loops.size(), 1u);
  matgrad::request_interrupt();
  EXPECT_THROW(p.run({x->value()}), matgrad::Interrupted) << "the loop polls as it runs";
  EXPECT_NO_THROW(p.run({x->value()}));
}

TEST(Validate, MalformedLoopsAreRefused) {
  NodeRef x = leaf(S(8), DType::f64, std::vector<double>(8, 0.5));
  NodeRef f = matgrad::sum(matgrad::exp(matgrad::sin(x)) * x);
  const Program good = matgrad::compile_graph({x}, {f, matgrad::cos(x)});
  ASSERT_FALSE(good.loops.empty()) << good.str();
  ASSERT_GE(good.block_buffers, 1u) << good.str();
  std::uint32_t blk = 0;
  for (std::uint32_t s = 0; s < good.slots.size(); ++s)
    if (good.slots[s].kind == matgrad::SlotKind::block) blk = s;
  auto refused = [&](auto&& mutate, const char* what) {
    Program p = good;
    mutate(p);
    EXPECT_THROW(p.validate(), matgrad::ValueError) << what;
  };
  refused([](Program& p) { p.loops[0].end = std::uint32_t(p.code.size() + 1); }, "a loop past the code");
  refused([](Program& p) { p.loops[0].elements = 9; }, "a loop of another element count");
  refused([](Program& p) { p.loops.push_back(p.loops[0]); }, "overlapping loops");
  refused([&](Program& p) { p.outputs[0] = blk; }, "a block slot returned");
  refused([&](Program& p) { p.slots[blk].index = std::int64_t(p.block_buffers); }, "a block buffer past the count");
  refused([&](Program& p) { p.loops.clear(); }, "a block slot outside any loop");
  refused(
      [&](Program& p) {
        for (std::size_t i = 0; i < p.code.size(); ++i)
          if (std::string(matgrad::op_name(p.code[i].op)) == "sum") p.args[p.code[i].in] = blk;
      },
      "a block slot read outside its loop");
}

// exp and log redo subnormal results and arguments with std::exp/log after their vectorised pass;
// written in place over their argument (the memory plan, a fused loop's block) they must still see
// it: the compiled results equal eager's bit for bit.
TEST(MemoryPlan, InPlaceExpAndLogKeepTheirSubnormalRedo) {
  for (std::int64_t n : {1, 3, 600})
    for (DType d : {DType::f64, DType::f32}) {
      SCOPED_TRACE(std::to_string(n) + " " + dtype_str(d));
      const double shift = d == DType::f64 ? 720 : 95;  // exp(x - shift) subnormal for x near 0
      std::vector<double> v(static_cast<std::size_t>(n), 0.0);
      for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = double(i % 7) * 0.5 - 1.0;
      NodeRef x = leaf(S(n), d, v);
      const double big = d == DType::f64 ? 1e300 : 1e30;
      // exp written over a temporary that dies there, its result read again (not returned)
      NodeRef e = matgrad::exp(x - shift) * big;
      NodeRef l = matgrad::log(matgrad::exp(x - shift) * 0.5) * 2.0;  // log of subnormal arguments
      Program p = matgrad::compile_graph({x}, {e, l});
      const std::vector<Val> r = p.run({x->value()});
      EXPECT_TRUE(all_close(values(r[0]), values(e), Tol{0, 0})) << p.str();
      EXPECT_TRUE(all_close(values(r[1]), values(l), Tol{0, 0})) << p.str();
      EXPECT_GT(values(e)[0], 0.0);
    }
}

TEST(Replay, OneFactorizationPerMatrixPerCall) {
  const Input xi{S(3, 3), {4, 1, 0, 1, 5, 1, 0, 1, 6}};
  NodeRef x = leaf(xi, DType::f64);
  NodeRef b = leaf(S(3), DType::f64, {1, 2, 3});
  NodeRef f = matgrad::logdet(x) + matgrad::sum(matgrad::inv(x)) + matgrad::sum(matgrad::solve(x, b)) + matgrad::det(x);
  Program p = matgrad::compile_value_and_grad({x, b}, f, {0, 1});
  const std::vector<Val> in = {x->value(), b->value()};
  p.run(in);
  const std::int64_t before = matgrad::lu_factorizations();
  const std::vector<Val> r = p.run(in);
  EXPECT_EQ(matgrad::lu_factorizations() - before, 1) << "det, logdet, inv, solve and their VJPs share one LU";
  const std::vector<Val> want = matgrad::grad_values(f, {x, b});
  EXPECT_TRUE(all_close(values(r[1]), values(want[0]), Tol{1e-13, 1e-14}));
  EXPECT_TRUE(all_close(values(r[2]), values(want[1]), Tol{1e-13, 1e-14}));
}

TEST(Replay, SingularMatricesRaiseAsEager) {
  NodeRef x = leaf(S(2, 2), DType::f64, {1, 0, 0, 1});
  Program p = matgrad::compile_graph({x}, {matgrad::sum(matgrad::inv(x))});
  const std::vector<double> zeros(4, 0.0);
  NodeRef z = leaf(S(2, 2), DType::f64, zeros);
  EXPECT_EQ(error_of<matgrad::LinAlgError>([&] { p.run({z->value()}); }), "inv: matrix of shape (2, 2) is singular");
  EXPECT_DOUBLE_EQ(values(p.run({x->value()})[0])[0], 2.0);  // still usable
}

TEST(Replay, WrongInputsAreRefused) {
  NodeRef x = leaf(S(2), DType::f64, {1, 2});
  Program p = matgrad::compile_graph({x}, {matgrad::sum(x)});
  NodeRef y = leaf(S(3), DType::f64, {1, 2, 3});
  EXPECT_EQ(error_of<matgrad::ShapeError>([&] { p.run({y->value()}); }),
            "program: input 0 has shape (3,) float64; the program was built for shape (2,) float64");
  EXPECT_EQ(error_of<matgrad::TypeError>([&] { p.run({}); }), "program: takes 1 inputs, got 0");
}

TEST(Replay, EightThreadsRunOneProgramAtOnce) {
  Rng rng(3);
  const Input ai = rng.input(S(5, 5)), xi = rng.input(S(5));
  NodeRef a = leaf(ai, DType::f64), x = leaf(xi, DType::f64);
  NodeRef f = matgrad::sum(matgrad::tanh(matgrad::matmul(a, x)) * matgrad::logsumexp(x));
  const Program p = matgrad::compile_value_and_grad({a, x}, f, {0, 1});
  std::vector<std::vector<Val>> inputs;
  std::vector<NodeRef> keep;  // the values live in these nodes
  std::vector<std::vector<double>> want;
  for (int t = 0; t < 8; ++t) {
    NodeRef at = leaf(rng.input(S(5, 5)), DType::f64), xt = leaf(rng.input(S(5)), DType::f64);
    keep.push_back(at);
    keep.push_back(xt);
    inputs.push_back({at->value(), xt->value()});
    std::vector<double> w;
    for (const Val& v : p.run(inputs.back())) {
      const std::vector<double> vs = values(v);
      w.insert(w.end(), vs.begin(), vs.end());
    }
    want.push_back(w);
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < 300; ++r) {
        std::vector<double> got;
        for (const Val& v : p.run(inputs[std::size_t(t)])) {
          const std::vector<double> vs = values(v);
          got.insert(got.end(), vs.begin(), vs.end());
        }
        if (got != want[std::size_t(t)]) ++bad;
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Replay, AnInterruptStopsALongReplay) {
  NodeRef x = leaf(S(4), DType::f64, {1, 2, 3, 4});
  NodeRef y = x;
  for (int i = 0; i < 5000; ++i) y = matgrad::sin(y);
  Program p = matgrad::compile_graph({x}, {y});
  matgrad::request_interrupt();
  EXPECT_THROW(p.run({x->value()}), matgrad::Interrupted);
  EXPECT_NO_THROW(p.run({x->value()})) << "the request is consumed";
}

TEST(Validate, MalformedProgramsAreRefused) {
  NodeRef x = leaf(S(2), DType::f64, {1, 2});
  const Program good = matgrad::compile_graph({x}, {matgrad::exp(x)}, false);
  auto refused = [&](auto&& mutate, const char* what) {
    Program p = good;
    mutate(p);
    EXPECT_THROW(p.validate(), matgrad::ValueError) << what;
  };
  refused([](Program& p) { p.code[0].out = p.inputs[0]; }, "an instruction writing its input");
  refused([](Program& p) { p.args[p.code[0].in] = std::uint32_t(p.slots.size()); }, "a slot past the table");
  refused([](Program& p) { p.code[0].op = matgrad::OpId{std::uint16_t(matgrad::op_count())}; }, "an unknown op");
  refused([](Program& p) { p.code[0].nin = 2; }, "the wrong arity");
  refused([](Program& p) { p.slots[p.code[0].out].shape = S(3); }, "a result of the wrong shape");
  refused([](Program& p) { p.slots[p.code[0].out].dtype = DType::f32; }, "a result of the wrong dtype");
  refused([](Program& p) { p.outputs[0] = 99; }, "an output past the table");
  refused([](Program& p) { p.slots[p.inputs[0]].index = 5; }, "an input slot naming no input");
}

TEST(Archive, RoundTripAndBadFiles) {
  NodeRef x = leaf(S(2, 2), DType::f64, {3, 1, 1, 2});
  NodeRef f = matgrad::logdet(x) + matgrad::sum(matgrad::sin(x) * 2.0);
  matgrad::ProgramArchive a;
  a.argnums = {0};
  a.meta = "meta text";
  a.entries.push_back(
      {"key", "value_and_grad", std::make_shared<const Program>(matgrad::compile_value_and_grad({x}, f, {0}))});
  const std::string bytes = matgrad::save_programs(a);
  const matgrad::ProgramArchive b = matgrad::load_programs(bytes);
  ASSERT_EQ(b.entries.size(), 1u);
  EXPECT_EQ(b.meta, "meta text");
  EXPECT_EQ(b.argnums, std::vector<int>{0});
  const std::vector<Val> r1 = a.entries[0].program->run({x->value()});
  const std::vector<Val> r2 = b.entries[0].program->run({x->value()});
  for (std::size_t k = 0; k < r1.size(); ++k) EXPECT_EQ(values(r1[k]), values(r2[k]));
  auto refused = [&](const std::string& data, const std::string& what) {
    const std::string msg = error_of<matgrad::ValueError>([&] { matgrad::load_programs(data); });
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  };
  refused("", "empty");
  refused("not a program", "not a matgrad program file");
  refused(bytes.substr(0, 20), "truncated");
  refused(bytes.substr(0, bytes.size() - 3), "truncated");
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  refused(flipped, "checksum");
}

// ---- corrupt archives found by the fuzzer (cpp/fuzz/fuzz_load_programs.cpp) ----
// Each test writes a program that is wrong in one way with save_programs (which writes what it
// is given) and checks that load_programs refuses it with a ValueError naming the problem.

// p alone in an archive, saved then loaded: the ValueError's message ("loaded" if it loads).
std::string load_error(const Program& p) {
  matgrad::ProgramArchive a;
  a.entries.push_back({"key", "graph", std::make_shared<const Program>(p)});
  const std::string bytes = matgrad::save_programs(a);
  try {
    matgrad::load_programs(bytes);
  } catch (const matgrad::ValueError& e) {
    return e.what();
  }
  return "loaded";
}

// Found by the fuzzer: seed_matmul's kernel writes one member per element of its attribute's
// shape, which nothing compared with its seed operand: a larger attribute shape wrote past the
// result (ASan: heap-buffer-overflow in fwd_seed_matmul), an empty one left the result unwritten
// (two replays differed), a huge one overflowed the kernel's index arithmetic (UBSan).
TEST(Archive, SeedProductsMustMatchTheirSeed) {
  NodeRef a = leaf(S(3, 3), DType::f64, {1, 2, 3, 4, 5, 6, 7, 8, 10});
  NodeRef b = leaf(S(3), DType::f64, {0.5, -1, 2});
  const Program good = matgrad::compile_jacobian({a, b}, matgrad::matmul(a, matgrad::tanh(b)), {0, 1});
  std::size_t at = good.code.size();
  for (std::size_t i = 0; i < good.code.size(); ++i)
    if (std::string(matgrad::op_name(good.code[i].op)) == "seed_matmul") at = i;
  ASSERT_LT(at, good.code.size()) << "no seed product to corrupt:\n" << good.str();
  EXPECT_EQ(load_error(good), "loaded");
  auto refused = [&](auto&& mutate, const char* what) {
    Program p = good;
    matgrad::Attr& attr = p.attrs[p.code[at].attr];
    mutate(p, attr);
    EXPECT_THROW(p.validate(), matgrad::ValueError) << what;
    const std::string msg = load_error(p);
    EXPECT_NE(msg.find("seed batch"), std::string::npos) << what << ": " << msg;
  };
  refused([](Program&, matgrad::Attr& attr) { attr.shape = S(attr.shape.size() + 2); }, "more members than the seed");
  refused([](Program&, matgrad::Attr& attr) { attr.shape = S(attr.shape.size(), 0); }, "no members");
  refused([](Program&, matgrad::Attr& attr) { attr.shape = S(std::int64_t(1) << 28, std::int64_t(1) << 28); },
          "a huge seed");
  refused([](Program&, matgrad::Attr& attr) { attr.shape = S(1, attr.shape.size()); }, "another shape, same size");
  refused([](Program&, matgrad::Attr& attr) { attr.offset = 2; }, "neither left nor right");
}

// Found by the fuzzer: an input slot with a batch. run() checks each argument against the slot's
// shape, but the slot's storage is batch times larger: returning it read past the caller's value
// (ASan: heap-buffer-overflow in Program::run), an instruction reading it too.
TEST(Archive, InputSlotsAreNeverBatched) {
  NodeRef x = leaf(S(2), DType::f64, {1, 2});
  for (const bool identity : {true, false}) {
    Program p = matgrad::compile_graph({x}, {identity ? x : matgrad::exp(x)});
    EXPECT_EQ(load_error(p), "loaded");
    p.slots[p.inputs[0]].batch = 128;
    if (!identity) p.slots[p.code[0].out].batch = 128;  // so that exp's own rules hold
    EXPECT_THROW(p.validate(), matgrad::ValueError);
    const std::string msg = load_error(p);
    EXPECT_NE(msg.find("input slot 0 is batched"), std::string::npos) << msg;
  }
}

// Found by the fuzzer: a batched mul of a batch of (3,) values and an unbatched scalar. The
// batched kernel reads the unbatched operand as one row of the member's size (the sweeps record a
// broadcast_to first), so it read two elements past the scalar: other temporaries of the
// workspace, and two replays of one program differed (no sanitizer sees a read inside the
// workspace's block).
TEST(Archive, BatchedElementwiseOperandsHaveTheResultsShape) {
  NodeRef x = leaf(S(3), DType::f64, {0.2, -0.4, 0.7});
  NodeRef f =
      matgrad::logsumexp(x) + matgrad::sum(matgrad::square(x) * matgrad::sigmoid(x)) + matgrad::exp(matgrad::sum(x));
  const Program good = matgrad::compile_hessian({x}, f, {0});
  EXPECT_EQ(load_error(good), "loaded");
  // a batched mul with an operand that is not batched, and a scalar temporary written before it
  std::size_t at = good.code.size(), arg = 0, scalar = good.slots.size();
  for (std::size_t i = 0; i < good.code.size() && scalar == good.slots.size(); ++i) {
    const matgrad::Instr& ins = good.code[i];
    if (std::string(matgrad::op_name(ins.op)) != "mul" || !good.slots[ins.out].batch) continue;
    for (std::uint32_t j = 0; j < 2; ++j)
      if (!good.slots[good.args[ins.in + j]].batch) {
        at = i;
        arg = ins.in + j;
      }
    if (at != i) continue;
    for (std::size_t k = 0; k < at; ++k) {
      const matgrad::Slot& s = good.slots[good.code[k].out];
      if (s.kind == matgrad::SlotKind::temp && !s.batch && s.shape.size() == 1) scalar = good.code[k].out;
    }
  }
  ASSERT_LT(at, good.code.size()) << good.str();
  ASSERT_LT(scalar, good.slots.size()) << good.str();
  Program p = good;
  p.args[arg] = std::uint32_t(scalar);
  EXPECT_THROW(p.validate(), matgrad::ValueError);
  const std::string msg = load_error(p);
  EXPECT_NE(msg.find("an operand of another shape than its batched result"), std::string::npos) << msg;
}

// ---- matgrad::compile: the C++ entry point ----

// The function the Compile tests use, written on variables: f(A, x) = sum(sin(A x)) + x^T A x / 2
// + logsumexp(x), A 4 x 4, x 1-D of 4.
matgrad::Var compile_test_fn(const matgrad::Var& a, const matgrad::Var& x) {
  return matgrad::sum(matgrad::sin(matgrad::matmul(a, x))) + 0.5 * matgrad::quad_form(x, a) + matgrad::logsumexp(x);
}
bool same(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, double tol) {
  return a.rows() == b.rows() && a.cols() == b.cols() && a.isApprox(b, tol);
}

TEST(Compile, ReplaysMatchEagerAtNewValues) {
  matgrad::Var a = matgrad::variable(Eigen::MatrixXd::Random(4, 4));
  matgrad::Var x1 = leaf(S(4), DType::f64, {0.1, -0.2, 0.3, 0.4});
  matgrad::Var f = compile_test_fn(a, x1);
  matgrad::Compiled cf = matgrad::compile({a, x1}, {f});
  EXPECT_EQ(cf.num_inputs(), 2u);
  EXPECT_EQ(cf.num_outputs(), 1u);
  for (int trial = 0; trial < 3; ++trial) {
    const Eigen::MatrixXd an = Eigen::MatrixXd::Random(4, 4), xn = Eigen::MatrixXd::Random(4, 1);
    matgrad::Var ae = matgrad::variable(an), xe = leaf(S(4), DType::f64, {xn(0), xn(1), xn(2), xn(3)});
    matgrad::Var fe = compile_test_fn(ae, xe);
    EXPECT_NEAR(cf({an, xn})[0](0, 0), matgrad::value(fe)(0, 0), 1e-13);
    const auto [v, g] = cf.value_and_grad({an, xn});
    EXPECT_NEAR(v, matgrad::value(fe)(0, 0), 1e-13);
    const std::vector<Eigen::MatrixXd> ge = matgrad::grad(fe, {ae, xe});
    ASSERT_EQ(g.size(), 2u);
    EXPECT_TRUE(same(g[0], ge[0], 1e-12)) << g[0] << "\n" << ge[0];
    EXPECT_TRUE(same(g[1], ge[1], 1e-12));
    EXPECT_TRUE(same(cf.grad({an, xn}, {1})[0], ge[1], 1e-12));
    const auto h = cf.hessian({an, xn}, {1});
    const auto he = matgrad::hessian(fe, {xe});
    EXPECT_TRUE(same(h[0][0], he[0][0], 1e-12));
    const auto hall = cf.hessian({an, xn});
    ASSERT_EQ(hall.size(), 2u);
    ASSERT_EQ(hall[1].size(), 2u);
    EXPECT_TRUE(same(hall[1][1], he[0][0], 1e-12));
    EXPECT_TRUE(same(hall[0][1], matgrad::hessian(fe, {ae, xe})[0][1], 1e-12));
    // a row works for a 1-D input as well as a column
    EXPECT_NEAR(cf({an, xn.transpose()})[0](0, 0), v, 0);
  }
  // a non-scalar output: values and Jacobians, float32
  Eigen::MatrixXd b0 = Eigen::MatrixXd::Random(3, 2);
  matgrad::Var b = matgrad::cast(matgrad::variable(b0), DType::f32);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({b}, {b}); }), "no exception");
  matgrad::Var bf = leaf(S(3, 2), DType::f32, {1, 2, 3, 4, 5, 6});
  matgrad::Var k = matgrad::matmul(bf, bf, true, false);
  matgrad::Compiled ck = matgrad::compile({bf}, {k, matgrad::sum(k)});
  const std::vector<Eigen::MatrixXd> r = ck({b0});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(same(r[0], b0.cast<float>().cast<double>().transpose() * b0.cast<float>().cast<double>(), 1e-6));
  EXPECT_EQ(ck.program().slots[ck.program().inputs[0]].dtype, DType::f32);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { ck.jacobian({b0}); }).find("2 outputs"), std::string::npos);
  matgrad::Compiled ck1 = matgrad::compile({bf}, {k});
  const Eigen::MatrixXd j = ck1.jacobian({b0})[0];
  EXPECT_EQ(j.rows(), 4);
  EXPECT_EQ(j.cols(), 6);
}

TEST(Compile, BadInputsAndCallsAreRefused) {
  matgrad::Var x = leaf(S(2, 2), DType::f64, {1, 2, 3, 4});
  matgrad::Var c = leaf(S(2, 2), DType::f64, {1, 2, 3, 4}, false);
  matgrad::Var y = matgrad::exp(x);
  matgrad::Var f = matgrad::sum(y * c);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({y}, {f}); }).find("not a variable"),
            std::string::npos);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({c}, {f}); }).find("does not require a gradient"),
            std::string::npos);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({x, x}, {f}); }).find("twice"), std::string::npos);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({matgrad::Var()}, {f}); }).find("null"),
            std::string::npos);
  EXPECT_NE(error_of<matgrad::ValueError>([&] { matgrad::compile({x}, {}); }).find("no outputs"), std::string::npos);
  matgrad::Compiled cf = matgrad::compile({x}, {f});
  EXPECT_NE(error_of<matgrad::TypeError>([&] { cf({}); }).find("takes 1 inputs, got 0"), std::string::npos);
  const std::string e = error_of<matgrad::ShapeError>([&] { cf({Eigen::MatrixXd::Ones(3, 2)}); });
  EXPECT_NE(e.find("3 x 2"), std::string::npos) << e;
  EXPECT_NE(e.find("(2, 2)"), std::string::npos) << e;
  EXPECT_NE(error_of<matgrad::ValueError>([&] { cf.grad({Eigen::MatrixXd::Ones(2, 2)}, {3}); }).find("out of range"),
            std::string::npos);
  matgrad::Compiled cy = matgrad::compile({x}, {y});
  EXPECT_NE(error_of<matgrad::ValueError>([&] { cy.grad({Eigen::MatrixXd::Ones(2, 2)}); }), "no exception");
  // the value with c captured when compiled: c changing later changes nothing
  c->mat<double>().setZero();
  EXPECT_NEAR(cf({Eigen::MatrixXd::Zero(2, 2)})[0](0, 0), 10.0, 1e-15);
}

TEST(Compile, TracingRecordsWhatTheGraphDidNot) {
  // sum(x) under no-grad: a constant of the built graph, but recomputed by the traced form
  auto fn = [](const std::vector<matgrad::Var>& xs) {
    matgrad::Var s;
    {
      matgrad::GradMode off(false);
      s = matgrad::sum(xs[0]);
    }
    return matgrad::sum(xs[0] * s);
  };
  const Eigen::MatrixXd x0 = Eigen::MatrixXd::Constant(2, 2, 1.0), x1 = Eigen::MatrixXd::Constant(2, 2, 2.0);
  matgrad::Compiled traced = matgrad::compile({x0}, fn);
  EXPECT_NEAR(traced({x1})[0](0, 0), 8.0 * 8.0, 1e-13);      // sum(x1) * sum(x1)
  EXPECT_NEAR(traced.grad({x1})[0](0, 0), 8.0, 1e-13);       // s is a constant for the gradient
  matgrad::Var x = matgrad::variable(x0);
  matgrad::Compiled built = matgrad::compile({x}, {fn({x})});
  EXPECT_NEAR(built({x1})[0](0, 0), 4.0 * 8.0, 1e-13);  // s kept from x0, as the graph recorded it
}

TEST(Compile, ManyThreadsCallOneCompiledFunctionAtOnce) {
  matgrad::Var a = matgrad::variable(Eigen::MatrixXd::Random(4, 4));
  matgrad::Var x = leaf(S(4), DType::f64, {0.1, -0.2, 0.3, 0.4});
  matgrad::Compiled cf = matgrad::compile({a, x}, {compile_test_fn(a, x)});
  std::vector<std::vector<Eigen::MatrixXd>> in;
  for (int t = 0; t < 8; ++t) in.push_back({Eigen::MatrixXd::Random(4, 4), Eigen::MatrixXd::Random(4, 1)});
  std::vector<std::vector<Eigen::MatrixXd>> want;  // single-threaded, from a copy
  {
    matgrad::Compiled copy = matgrad::compile({a, x}, {compile_test_fn(a, x)});
    for (int t = 0; t < 8; ++t) {
      std::vector<Eigen::MatrixXd> w = copy.grad(in[std::size_t(t)]);
      w.push_back(copy.hessian(in[std::size_t(t)], {1})[0][0]);
      want.push_back(w);
    }
  }
  a = matgrad::Var();  // the caller's graph may go away: the compiled function has its own
  x = matgrad::Var();
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t, mine = cf] {  // each thread holds a copy, destroyed there
      for (int r = 0; r < 50; ++r) {  // the first calls build the programs, racing
        std::vector<Eigen::MatrixXd> got = mine.grad(in[std::size_t(t)]);
        got.push_back(cf.hessian(in[std::size_t(t)], {1})[0][0]);
        for (std::size_t i = 0; i < got.size(); ++i)
          if (got[i] != want[std::size_t(t)][i]) ++bad;
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace mgtest
