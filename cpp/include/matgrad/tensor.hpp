// SPDX-License-Identifier: MIT
// What a tensor does besides ops (Python's Tensor members, C++ users' Vars): read its value,
// set its gradient or requires_grad, copy it, list the graph behind it. The bindings convert
// their arguments and call these.
#pragma once

#include <matgrad/node.hpp>

#include <vector>

namespace matgrad {

/// Refuses (GraphError, naming `what`) to read the value of a tensor that a compile trace is
/// computing from its inputs (Note [tracing]): read now, the value would be baked into the program.
void check_readable(const Node& n, const char* what);

/// The one element of a tensor of shape (), (1,) or (1, 1), as a double; a TypeError naming
/// `what` (float, item, bool, ...) for other shapes.
double item(const Node& n, const char* what);
/// The truth value of a one-element tensor; a ShapeError for other shapes (ambiguous).
bool truth(const Node& n);

/// x.requires_grad = on, for a leaf only (GraphError otherwise); setting it gives the leaf its
/// own copy of the data (never the caller's memory: optimisers will write it).
void set_requires_grad(Node& x, bool on);
/// x.grad = g: a copy of g in x's dtype, of x's shape (ShapeError otherwise); null clears it.
void set_grad(Node& x, const NodeRef& g);

/// A new leaf holding x's value in dtype d, recording nothing (mg.tensor of a Tensor): it
/// shares x's buffer unless it requires a gradient or changes dtype, which copy.
NodeRef copy_leaf(const Node& x, DType d, bool requires_grad);

/// The graph behind root: every node reachable through parents, parents before children (an
/// iterative walk), and for each node the indices of its parents in that list.
struct GraphListing {
  std::vector<Node*> nodes;
  std::vector<std::vector<int>> parents;
};
GraphListing graph_listing(Node* root);

}  // namespace matgrad
