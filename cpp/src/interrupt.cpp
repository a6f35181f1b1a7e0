// SPDX-License-Identifier: MIT
#include <matgrad/error.hpp>
#include <matgrad/interrupt.hpp>

#include <atomic>

namespace matgrad {

namespace {
std::atomic<bool> g_requested{false};
std::atomic<InterruptCheck> g_check{nullptr};
}  // namespace

void request_interrupt() noexcept { g_requested.store(true, std::memory_order_relaxed); }
void clear_interrupt() noexcept { g_requested.store(false, std::memory_order_relaxed); }
void set_interrupt_check(InterruptCheck check) noexcept { g_check.store(check, std::memory_order_release); }

void poll_interrupt() {
  InterruptCheck check = g_check.load(std::memory_order_acquire);
  if (g_requested.exchange(false, std::memory_order_relaxed) || (check && check()))
    throw Interrupted("interrupted: the computation was stopped (nothing was accumulated)");
}

}  // namespace matgrad
