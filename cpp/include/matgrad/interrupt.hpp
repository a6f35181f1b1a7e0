// SPDX-License-Identifier: MIT
// Stopping long computations: the reverse sweeps and compiled replays poll for an interrupt every
// few thousand nodes or instructions, through one helper (poll_interrupt).
#pragma once

namespace matgrad {

/// Ask running sweeps and replays to stop (they throw Interrupted at their next poll). Safe to
/// call from a signal handler or another thread.
void request_interrupt() noexcept;
/// Forget a request.
void clear_interrupt() noexcept;

/// A check the embedding installs (the Python module: Python's pending signals, Ctrl-C): called
/// from the polls, it returns true to stop the computation. It may be called without Python's
/// GIL; it must be thread-safe. Null removes it.
using InterruptCheck = bool (*)();
void set_interrupt_check(InterruptCheck check) noexcept;

/// Throws Interrupted when a request is pending or the installed check says so. Call it every
/// kInterruptStride units of work: a node or an instruction is one unit plus one for every
/// kInterruptElements elements of its result, so that a few heavy nodes (a Jacobian's batch
/// of 1500 x 1500 cotangents) poll as often as thousands of small ones (about every
/// millisecond).
void poll_interrupt();
constexpr int kInterruptStride = 2048;
constexpr long long kInterruptElements = 512;

/// The units of work of a node or instruction whose result has `elements` elements.
constexpr long long interrupt_work(long long elements) { return 1 + elements / kInterruptElements; }

}  // namespace matgrad
