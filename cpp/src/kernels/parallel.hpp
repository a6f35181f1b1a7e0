// SPDX-License-Identifier: MIT
// The kernels' threads (Note [kernel threads] in parallel.cpp): a fixed split of the work into
// tasks, run on matgrad's worker threads and the caller.
#pragma once

#include <cstdint>
#include <functional>

namespace matgrad::parallel {

/// The thread count set by matgrad::set_num_threads (at least 1).
int threads();

/// How many tasks to split `work` units into: 1 below `min_work`, else up to threads(), each
/// at least min_work / 2 units.
int tasks_for(std::int64_t work, std::int64_t min_work);

/// Runs f(0) ... f(n - 1), each task once, on up to threads() threads (the caller included);
/// returns when all are done. The split is the caller's: results depend on n, never on which
/// thread ran a task. Serial when n <= 1, from inside a task, or while another caller's tasks
/// run. The first exception a task throws is rethrown here, after every task has finished.
void run(int n, const std::function<void(int)>& f);

/// [begin, end) of chunk i when [0, size) is cut into n nearly equal chunks whose inner
/// boundaries are multiples of `align`.
void chunk(std::int64_t size, int n, int i, std::int64_t align, std::int64_t& begin, std::int64_t& end);

}  // namespace matgrad::parallel
