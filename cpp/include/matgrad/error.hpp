// SPDX-License-Identifier: MIT
#pragma once

#include <stdexcept>
#include <string>

namespace matgrad {

/// Base of every error the engine raises. Messages start with the op name and give every
/// operand shape as a Python tuple, e.g. "matmul: shapes (3, 4) and (5, 2) are not aligned".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A bad value of an argument: an unknown name, a corrupt file (Python: ValueError).
class ValueError : public Error {
 public:
  using Error::Error;
};
/// Shapes that do not fit the op (Python: ValueError).
class ShapeError : public ValueError {
 public:
  using ValueError::ValueError;
};
/// Arguments of the wrong kind (Python: TypeError).
class TypeError : public Error {
 public:
  using Error::Error;
};
/// An index out of range (Python: IndexError).
class IndexError : public Error {
 public:
  using Error::Error;
};
/// A singular or otherwise unusable matrix (Python: numpy.linalg.LinAlgError).
class LinAlgError : public Error {
 public:
  using Error::Error;
};
/// A request the graph cannot satisfy, e.g. backward from a node that needs no gradient
/// (Python: RuntimeError).
class GraphError : public Error {
 public:
  using Error::Error;
};

/// A computation stopped because an interrupt was requested (Python: KeyboardInterrupt, or what
/// the signal handler raised). The graph and every tensor stay usable; nothing was half-written.
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// Anomaly mode (matgrad/anomaly.hpp) found an op whose value or cotangent became NaN or Inf
/// (Python: matgrad.AnomalyError, a FloatingPointError and a RuntimeError).
class AnomalyError : public Error {
 public:
  using Error::Error;
};

}  // namespace matgrad
