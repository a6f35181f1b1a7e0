// SPDX-License-Identifier: MIT
// What linalg.cpp and linalg_factor.cpp share: the second registers its ops and entry points
// when the first calls it (keeping one order of registration), and both use the entry point of
// the two-operand ops. The factorizations (Eigen's LU, SVD and Cholesky) are instantiated in
// linalg_factor.cpp only, so the two files, among the heaviest of the build, compile in parallel.
#pragma once

#include "registry.hpp"

namespace matgrad {

// apply_promoted(e.op, a[0], a[1]): solve, kron, quad_form
Results front_binary_linalg(const EntryPoint& e, const Arg* a);
// det, adj_t, adj_t_vjp, logdet, slogdet, inv, solve, cholesky, trsolve
void register_factor_ops();
// det, logdet, slogdet, inv, solve, cholesky
void register_factor_entries();

}  // namespace matgrad
