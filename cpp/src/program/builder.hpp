// SPDX-License-Identifier: MIT
// The program under construction (build.cpp, RecordAlg).
#pragma once

#include <matgrad/program.hpp>

#include <cstdint>
#include <unordered_map>

namespace matgrad {

class ProgramBuilder {
 public:
  Program p;
  std::unordered_map<const Node*, std::uint32_t> slot_of;  ///< the slot of each node linearised

  ProgramBuilder();
  std::uint32_t add_slot(const Slot& s);
  /// The next argument: a leaf whose value each call gives.
  void add_input(const NodeRef& n);
  /// A constant slot holding a copy of v, seen with `shape` (and `batch`).
  std::uint32_t constant(const Val& v, const Shape& shape, std::int64_t batch);
  std::uint32_t attr(const Attr& a);
  /// Append out = op(in...) and return out's slot.
  std::uint32_t emit(OpId op, const std::uint32_t* in, int n, const Attr& a, const Slot& out);
  /// A slot over the storage of slot `of` with another shape of the same size.
  std::uint32_t view(std::uint32_t of, const Shape& shape, std::int64_t batch);
  /// The slot holding node n's value, linearising the graph behind it as needed.
  std::uint32_t value(const Node* n);
};

}  // namespace matgrad
