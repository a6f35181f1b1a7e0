// SPDX-License-Identifier: MIT
// Anomaly mode (Python: mg.detect_anomaly()): the eager ops and the reverse sweeps check their
// results for NaN and Inf and throw AnomalyError at the first op that made one.
#pragma once

#include <string>

namespace matgrad {

struct Node;

// Note [anomaly mode]
// Off by default, per thread, and then it costs one thread-local test per op. On:
// - apply() checks every result: a NaN where no input had a NaN, or an Inf where no input had
//   a NaN or an Inf, throws AnomalyError naming the op, the input shapes and where the op was
//   called (the site function the embedding installs: the Python module gives the line of the
//   user's code). A NaN that came in with the data is not the op's doing and passes.
// - apply() also records that site for every node that keeps its parents (a side table, keyed
//   by node, erased when the node dies), so that a reverse sweep can say where the op whose
//   backward failed was called.
// - A reverse sweep (backward, grad, jacobian, hessian; with create_graph too) checks each
//   cotangent a VJP gives: a NaN or an Inf there, from a finite incoming cotangent, throws
//   AnomalyError naming the op, the input whose cotangent it is, the shapes and the recorded
//   site. Nothing reaches a leaf's .grad then (the sweep throws before accumulating).
// Ops that run inside a VJP are not checked one by one: the sweep checks what the VJP gives.
// Compiled replays are not checked (they run no apply()); call the function uncompiled.

/// Whether anomaly mode is on for this thread.
bool anomaly_enabled() noexcept;
void set_anomaly_enabled(bool on) noexcept;

/// RAII guard that sets anomaly mode and restores it.
class AnomalyMode {
 public:
  explicit AnomalyMode(bool on = true) : prev_(anomaly_enabled()) { set_anomaly_enabled(on); }
  ~AnomalyMode() { set_anomaly_enabled(prev_); }
  AnomalyMode(const AnomalyMode&) = delete;
  AnomalyMode& operator=(const AnomalyMode&) = delete;

 private:
  bool prev_;
};

/// Where the caller is, for messages ("model.py:12 in loss"); the embedding installs it (null:
/// no site). Called on the thread that runs the op, in anomaly mode only.
using AnomalySiteFn = std::string (*)();
void set_anomaly_site(AnomalySiteFn fn) noexcept;

/// The site recorded for node n in anomaly mode, or "".
std::string anomaly_site(const Node* n);

namespace detail {
/// How many nodes have a recorded site (0: Node's destructor skips the side table).
bool anomaly_sites_recorded() noexcept;
void anomaly_forget(const Node* n) noexcept;
}  // namespace detail

}  // namespace matgrad
