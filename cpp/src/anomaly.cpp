// SPDX-License-Identifier: MIT
// Anomaly mode (Note [anomaly mode] in matgrad/anomaly.hpp).
#include <matgrad/anomaly.hpp>
#include <matgrad/node.hpp>

#include "anomaly_check.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <unordered_map>

namespace matgrad {

using detail::Finite;

namespace {

thread_local bool t_enabled = false;
thread_local int t_quiet = 0;
std::atomic<AnomalySiteFn> g_site{nullptr};

// The sites of nodes made in anomaly mode, by node (any thread may make or free a node).
std::mutex& sites_mu() {
  static auto* m = new std::mutex();  // never destroyed, as the table: nodes die late
  return *m;
}
std::unordered_map<const Node*, std::string>& sites() {
  static auto* m = new std::unordered_map<const Node*, std::string>();  // never destroyed: nodes die late
  return *m;
}
std::atomic<std::size_t> g_nsites{0};

template <class T>
Finite classify_as(const T* p, std::int64_t n) {
  Finite f = Finite::all;
  for (std::int64_t i = 0; i < n; ++i) {
    const T x = p[i];
    if (std::isnan(x)) return Finite::nan;
    if (std::isinf(x)) f = Finite::inf;
  }
  return f;
}

std::string shapes_of(const Val* in, int n, int skip) {
  std::string s;
  int shown = 0;
  for (int i = 0; i < n; ++i) {
    if (i == skip) continue;
    s += (shown++ ? ", " : "") + in[i].shape().str();
  }
  return s;
}

const char* what_of(Finite f) { return f == Finite::nan ? "nan" : "inf"; }

std::string site_clause(const std::string& site) { return site.empty() ? std::string() : "; it was called at " + site; }

}  // namespace

bool anomaly_enabled() noexcept { return t_enabled; }
void set_anomaly_enabled(bool on) noexcept { t_enabled = on; }
void set_anomaly_site(AnomalySiteFn fn) noexcept { g_site.store(fn, std::memory_order_release); }

std::string anomaly_site(const Node* n) {
  if (g_nsites.load(std::memory_order_relaxed) == 0) return {};
  std::lock_guard<std::mutex> lock(sites_mu());
  auto it = sites().find(n);
  return it == sites().end() ? std::string() : it->second;
}

namespace detail {

bool anomaly_sites_recorded() noexcept { return g_nsites.load(std::memory_order_relaxed) != 0; }

void anomaly_forget(const Node* n) noexcept {
  std::lock_guard<std::mutex> lock(sites_mu());
  if (sites().erase(n)) g_nsites.fetch_sub(1, std::memory_order_relaxed);
}

AnomalyQuiet::AnomalyQuiet() noexcept { ++t_quiet; }
AnomalyQuiet::~AnomalyQuiet() { --t_quiet; }

Finite classify(const Val& v) {
  if (!v) return Finite::all;
  const std::int64_t n = v.shape().size();
  return v.dtype() == DType::f64 ? classify_as(static_cast<const double*>(v.data()), n)
                                 : classify_as(static_cast<const float*>(v.data()), n);
}

std::string current_site() {
  AnomalySiteFn fn = g_site.load(std::memory_order_acquire);
  return fn ? fn() : std::string();
}

void anomaly_forward(OpId op, const Val* in, int n, int index_input, const Node& out) {
  std::string site = current_site();
  if (t_quiet == 0) {
    const Finite got = classify(out.value());
    if (got != Finite::all) {
      Finite had = Finite::all;
      for (int i = 0; i < n && had != Finite::nan; ++i)
        if (i != index_input) had = std::max(had, classify(in[i]));
      // A NaN is new unless an input had one; an Inf is new unless an input had an Inf or a NaN.
      if (had < got || (got == Finite::inf && had == Finite::all))
        throw AnomalyError(
            std::string(op_label(op)) + ": the result (shape " + out.shape.str() + ") has " + what_of(got) +
            " values from inputs of shape" + (n - (index_input >= 0) > 1 ? "s " : " ") + shapes_of(in, n, index_input) +
            (had == Finite::all ? " that are all finite" : " that have no " + std::string(what_of(got))) +
            " (anomaly mode)" + site_clause(site));
    }
  }
  if (out.nparents > 0 && !site.empty()) {
    std::lock_guard<std::mutex> lock(sites_mu());
    auto [it, fresh] = sites().insert_or_assign(&out, std::move(site));
    (void)it;
    if (fresh) g_nsites.fetch_add(1, std::memory_order_relaxed);
  }
}

void anomaly_backward(const Node& n, int k, const Val& cot, Finite got) {
  const Node& p = *n.parent(k);
  std::string msg = std::string(op_label(n.op)) + " (backward): the cotangent of input " + std::to_string(k) +
                    " (shape " + p.shape.str() + ") has " + what_of(got) +
                    " values, from a finite cotangent of the result (shape " + n.shape.str() + ")";
  std::string in;
  for (int i = 0; i < n.nparents; ++i) in += (i ? ", " : "") + n.parent(i)->shape.str();
  msg += "; inputs of shape" + std::string(n.nparents > 1 ? "s " : " ") + in + " (anomaly mode)";
  const std::string site = anomaly_site(&n);
  msg += site.empty() ? "; the op was not made in anomaly mode, so where it was called is unknown"
                      : "; " + std::string(op_label(n.op)) + " was called at " + site;
  (void)cot;
  throw AnomalyError(msg);
}

}  // namespace detail

}  // namespace matgrad
