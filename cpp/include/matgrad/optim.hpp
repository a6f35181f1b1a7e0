// SPDX-License-Identifier: MIT
// In-place parameter updates for optimisers (mg.optim): outside the graph, nothing recorded.
#pragma once

#include "node.hpp"

#include <cstdint>

namespace matgrad {

/// Throws GraphError (naming `op`) unless x is a leaf: only leaves are updated in place.
void require_leaf(const Node& x, const char* op);

/// Give x memory of its own: a node mapping a caller's array, or sharing its buffer with
/// detach()ed tensors, gets a private copy (the value is unchanged).
void own_storage(Node& x);

/// Every in-place write of a leaf's value goes through here first: checks it is a leaf, gives it
/// memory of its own (a caller's array is never written), drops its cached factorization and
/// marks it written (Note [in-place writes] in node.hpp: graphs made from the old value can no
/// longer be differentiated).
void prepare_in_place(Node& x, const char* op);

/// x <- values, in place and recorded nowhere (mg.optim's hand-written updates): values are
/// cast to x's dtype and must have x's shape; x goes through prepare_in_place first.
void assign(Node& x, const NodeRef& values, const char* op = "assign");

/// Adam (Kingma & Ba) on leaf x with gradient g, in place: with c1 = 1 - b1^t, c2 = 1 - b2^t,
///   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  x <- x - lr (m / c1) / (sqrt(v / c2) + eps).
/// g, m, v: x's shape and dtype (m and v are the optimiser's state, written in place).
void adam_update(Node& x, const Val& g, const Val& m, const Val& v, double lr, double b1, double b2, double eps,
                 std::int64_t t);

/// SGD with momentum and weight decay on leaf x with gradient g, in place:
///   d = g + weight_decay x;  with a momentum buffer: buf <- momentum buf + d, d = buf;  x <- x - lr d.
/// `buf` (x's shape and dtype) may be empty when momentum is 0.
void sgd_update(Node& x, const Val& g, const Val& buf, double lr, double momentum, double weight_decay);

}  // namespace matgrad
