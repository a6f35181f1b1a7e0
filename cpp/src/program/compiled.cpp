// SPDX-License-Identifier: MIT
// matgrad::compile and Compiled (matgrad/compiled.hpp): a private copy of the graph, the
// programs built from it on first use, and calls that only replay.
#include <matgrad/compiled.hpp>
#include <matgrad/error.hpp>

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace matgrad {

namespace {

// A copy of the graph from `inputs` to `outputs` that shares nothing with it: every node new,
// every value copied (node and buffer counts are not atomic, so a graph another thread may use
// cannot be shared). Input leaves are traced and require a gradient; the other leaves are
// constants; a copied node requires a gradient when one of its parents does.
void copy_graph(const std::vector<Var>& inputs, const std::vector<Var>& outputs, std::vector<NodeRef>& in_copy,
                std::vector<NodeRef>& out_copy) {
  std::unordered_map<const Node*, NodeRef> copy;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Node* x = inputs[i].get();
    const std::string which = "compile: input " + std::to_string(i);
    if (!x) throw ValueError(which + " is null");
    if (!x->is_leaf()) throw ValueError(which + " is not a variable (a leaf): it is computed by an op");
    if (!x->requires_grad)
      throw ValueError(which + " does not require a gradient, so nothing computed from it was recorded");
    if (copy.count(x)) throw ValueError(which + " is given twice");
    NodeRef c = make_leaf(x->value(), true);
    c->traced = true;
    copy[x] = c;
    in_copy.push_back(c);
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i]) throw ValueError("compile: output " + std::to_string(i) + " is null");
    // iterative post-order over parents (a 10^6-node chain must work)
    std::vector<std::pair<const Node*, int>> stack{{outputs[i].get(), 0}};
    while (!stack.empty()) {
      auto& [n, k] = stack.back();
      if (k < n->nparents) {
        const Node* q = n->parent(k++).get();
        if (!copy.count(q)) stack.push_back({q, 0});
        continue;
      }
      const Node* x = n;
      stack.pop_back();
      if (copy.count(x)) continue;
      NodeRef c;
      if (x->nparents == 0) {
        c = make_leaf(x->value(), false);  // a constant (a leaf or a value with no recorded inputs)
      } else {
        c = make_node(x->op, x->shape, x->dtype);
        c->attr = x->attr;
        std::memcpy(c->data, x->data, std::size_t(x->shape.size()) * itemsize(x->dtype));
        c->nparents = x->nparents;
        NodeRef* ps = c->parents_inline;
        if (x->nparents > Node::kInlineParents) {
          c->parents_heap.reset(new NodeRef[x->nparents]);
          ps = c->parents_heap.get();
        }
        bool rg = false, tr = false;
        for (int k = 0; k < x->nparents; ++k) {
          ps[k] = copy.at(x->parent(k).get());
          rg = rg || ps[k]->requires_grad;
          tr = tr || ps[k]->traced;
        }
        c->requires_grad = rg && x->requires_grad;
        c->traced = tr;
      }
      copy[x] = c;
    }
    out_copy.push_back(copy.at(outputs[i].get()));
  }
}

const char* transform_name(Transform t) {
  switch (t) {
    case Transform::value:
      return "value";
    case Transform::value_and_grad:
      return "value_and_grad";
    case Transform::jacobian:
      return "jacobian";
    case Transform::hessian:
      return "hessian";
  }
  return "?";
}

}  // namespace

struct Compiled::State {
  std::mutex mu;  // guards the graph copy and the cache
  std::vector<NodeRef> inputs, outputs;
  std::vector<Shape> input_shapes;
  std::vector<DType> input_dtypes;
  // programs by transform and argnums; never removed, so a reference stays valid
  std::map<std::pair<int, std::vector<int>>, std::unique_ptr<const Program>> cache;
};

Compiled::Compiled(const std::vector<Var>& inputs, const std::vector<Var>& outputs)
    : state_(std::make_shared<State>()) {
  if (outputs.empty()) throw ValueError("compile: no outputs");
  copy_graph(inputs, outputs, state_->inputs, state_->outputs);
  for (const NodeRef& x : state_->inputs) {
    state_->input_shapes.push_back(x->shape);
    state_->input_dtypes.push_back(x->dtype);
  }
  program(Transform::value);  // build errors surface here, not at the first call
}

std::size_t Compiled::num_inputs() const { return state_->inputs.size(); }
std::size_t Compiled::num_outputs() const { return state_->outputs.size(); }

const Program& Compiled::program(Transform t, const std::vector<int>& argnums0) const {
  State& st = *state_;
  std::vector<int> argnums = argnums0;
  if (t != Transform::value && argnums.empty())
    for (int i = 0; i < int(st.inputs.size()); ++i) argnums.push_back(i);
  if (t == Transform::value) argnums.clear();
  std::lock_guard<std::mutex> lock(st.mu);
  auto key = std::make_pair(int(t), argnums);
  auto it = st.cache.find(key);
  if (it != st.cache.end()) return *it->second;
  if (t != Transform::value && st.outputs.size() != 1)
    throw ValueError(std::string(transform_name(t)) + ": the compiled function has " +
                     std::to_string(st.outputs.size()) + " outputs; it needs exactly one");
  std::unique_ptr<const Program> p;
  switch (t) {
    case Transform::value:
      p = std::make_unique<Program>(compile_graph(st.inputs, st.outputs));
      break;
    case Transform::value_and_grad:
      p = std::make_unique<Program>(compile_value_and_grad(st.inputs, st.outputs[0], argnums));
      break;
    case Transform::jacobian:
      p = std::make_unique<Program>(compile_jacobian(st.inputs, st.outputs[0], argnums));
      break;
    case Transform::hessian:
      p = std::make_unique<Program>(compile_hessian(st.inputs, st.outputs[0], argnums));
      break;
  }
  return *st.cache.emplace(key, std::move(p)).first->second;
}

std::vector<Val> Compiled::run(const std::vector<Val>& xs, Transform t, const std::vector<int>& argnums) const {
  return program(t, argnums).run(xs);
}

std::vector<Val> Compiled::inputs_of(const std::vector<Eigen::MatrixXd>& xs) const {
  const State& st = *state_;
  if (xs.size() != st.inputs.size())
    throw TypeError("compiled function: takes " + std::to_string(st.inputs.size()) + " inputs, got " +
                    std::to_string(xs.size()));
  std::vector<Val> in;
  in.reserve(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = st.input_shapes[i];
    const Eigen::MatrixXd& m = xs[i];
    const bool fits = (m.rows() == s.rows && m.cols() == s.cols) ||
                      (s.ndim == 1 && m.cols() == 1 && m.rows() == s.cols);  // a column for a 1-D input
    if (!fits)
      throw ShapeError("compiled function: input " + std::to_string(i) + " is a " + std::to_string(m.rows()) + " x " +
                       std::to_string(m.cols()) + " matrix; it was compiled for shape " + s.str() +
                       (s.ndim == 2   ? std::string()
                        : s.ndim == 1 ? " (a row or a column of " + std::to_string(s.cols) + ")"
                                      : std::string(" (a 1 x 1 matrix)")));
    Val v = Val::empty(s, st.input_dtypes[i]);
    const Eigen::Map<const Eigen::MatrixXd> flat(m.data(), s.rows, s.cols);  // a vector's elements in order
    const bool vector = s.ndim < 2;
    if (v.dtype() == DType::f64)
      v.mat<double>() = vector ? flat : m;
    else
      v.mat<float>() = (vector ? Eigen::MatrixXd(flat) : m).cast<float>();
    in.push_back(std::move(v));
  }
  return in;
}

std::vector<Eigen::MatrixXd> Compiled::operator()(const std::vector<Eigen::MatrixXd>& xs) const {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& v : run(inputs_of(xs))) out.push_back(value(v));
  return out;
}

std::pair<double, std::vector<Eigen::MatrixXd>> Compiled::value_and_grad(const std::vector<Eigen::MatrixXd>& xs,
                                                                         const std::vector<int>& argnums) const {
  const std::vector<Val> r = run(inputs_of(xs), Transform::value_and_grad, argnums);
  std::pair<double, std::vector<Eigen::MatrixXd>> out;
  out.first = value(r[0])(0, 0);
  for (std::size_t i = 1; i < r.size(); ++i) out.second.push_back(value(r[i]));
  return out;
}

std::vector<Eigen::MatrixXd> Compiled::grad(const std::vector<Eigen::MatrixXd>& xs,
                                            const std::vector<int>& argnums) const {
  return value_and_grad(xs, argnums).second;
}

std::vector<Eigen::MatrixXd> Compiled::jacobian(const std::vector<Eigen::MatrixXd>& xs,
                                                const std::vector<int>& argnums) const {
  std::vector<Eigen::MatrixXd> out;
  for (const Val& v : run(inputs_of(xs), Transform::jacobian, argnums)) out.push_back(value(v));
  return out;
}

std::vector<std::vector<Eigen::MatrixXd>> Compiled::hessian(const std::vector<Eigen::MatrixXd>& xs,
                                                            const std::vector<int>& argnums) const {
  const std::vector<Val> r = run(inputs_of(xs), Transform::hessian, argnums);
  const std::size_t n = argnums.empty() ? num_inputs() : argnums.size();
  std::vector<std::vector<Eigen::MatrixXd>> out(n);
  for (std::size_t i = 0; i < r.size(); ++i) out[i / n].push_back(value(r[i]));
  return out;
}

Compiled compile(const std::vector<Var>& inputs, const std::vector<Var>& outputs) { return Compiled(inputs, outputs); }

}  // namespace matgrad
