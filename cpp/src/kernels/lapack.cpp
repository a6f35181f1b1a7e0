// SPDX-License-Identifier: MIT
#include "lapack.hpp"

#include <matgrad/api.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#define MATGRAD_LAPACK_DL 1
#endif

// ---- Note [LAPACK from the process] ----
// Eigen's eigen-, singular-value and Schur decompositions are unblocked: at n = 256 they take
// 1.3-7x the time of LAPACK's blocked dsyevd, dgesdd, dgees and zgees (docs/benchmarks.md). Linking a
// LAPACK would make every build and every C++ consumer find one; instead the engine looks, at
// the first decomposition, for a LAPACK already loaded in the process and calls it through
// dlsym. Under Python that is the OpenBLAS NumPy's wheels bundle (numpy.linalg's own LAPACK, so
// the results are NumPy's to the last bit up to matgrad's sign normalisation), loaded by
// `import numpy`: no new dependency, no build step. Where none is found (a C++ program that
// links none, another platform) Eigen's solvers run, as before; the C++ tests run that path,
// the Python tests both (select()).
//
// Symbol flavours, tried in this order in each loaded library whose file name contains
// "openblas" or "lapack":
//   scipy_dsyevd_64_  NumPy >= 2's scipy-openblas64 (ILP64)
//   dsyevd_64_        NumPy 1.22-1.26's openblas64_ (ILP64)
//   scipy_dsyevd_     SciPy's scipy-openblas32 (LP64)
//   dsyevd_           a system LAPACK (LP64, or ILP64 as Debian's libopenblas64)
// The integer width is not guessed from names: ilaver, called so that either width is safe,
// tells it (integer_width); a call with the wrong width would corrupt memory. Dimensions an
// LP64 library's workspace arithmetic could overflow in (n > kMaxLp64) go to Eigen.
// MATGRAD_LAPACK=off keeps Eigen's solvers; MATGRAD_LAPACK=<path> loads that library first.
// A found library must pass a self-test (an eigenproblem, an SVD, real and complex Schur forms
// and a Sylvester equation with known answers) before it is used. Strings are passed with
// Fortran's hidden length arguments.

namespace matgrad::lapack {

namespace {

template <class I>
struct Fns {
  using syevd_t = void (*)(const char*, const char*, const I*, double*, const I*, double*, double*, const I*, I*,
                           const I*, I*, std::size_t, std::size_t);
  using gesdd_t = void (*)(const char*, const I*, const I*, double*, const I*, double*, double*, const I*, double*,
                           const I*, double*, const I*, I*, I*, std::size_t);
  using gees_t = void (*)(const char*, const char*, void*, const I*, double*, const I*, I*, double*, double*, double*,
                          const I*, double*, const I*, I*, I*, std::size_t, std::size_t);
  using trsyl_t = void (*)(const char*, const char*, const I*, const I*, const I*, const double*, const I*,
                           const double*, const I*, double*, const I*, double*, I*, std::size_t, std::size_t);
  using zgees_t = void (*)(const char*, const char*, void*, const I*, std::complex<double>*, const I*, I*,
                           std::complex<double>*, std::complex<double>*, const I*, std::complex<double>*, const I*,
                           double*, I*, I*, std::size_t, std::size_t);
  syevd_t syevd = nullptr;
  gesdd_t gesdd = nullptr;
  gees_t gees = nullptr;
  trsyl_t trsyl = nullptr;
  zgees_t zgees = nullptr;
};

struct State {
  bool found = false;
  bool ilp64 = false;
  Fns<std::int32_t> f32;
  Fns<std::int64_t> f64;
  std::string backend = "eigen";
};

std::atomic<bool> g_use{true};
State g_state;
std::once_flag g_once;

// LP64 libraries compute workspace sizes in int32: above this dimension Eigen runs instead
constexpr Eigen::Index kMaxLp64 = 16384;

// ---- the calls, for either integer width ----
template <class I>
int syevd_t(const Fns<I>& f, Eigen::MatrixXd& A, Eigen::VectorXd& w, bool vectors) {
  const I n = I(A.rows()), lda = std::max<I>(1, n), query = -1;
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  w.resize(n);
  double wq = 0;
  I iq = 0, info = 0;
  f.syevd(&jobz, &uplo, &n, A.data(), &lda, w.data(), &wq, &query, &iq, &query, &info, 1, 1);
  if (info != 0) return int(info);
  if (wq >= double(std::numeric_limits<I>::max())) return kUnavailable;
  const I lwork = std::max<I>(I(wq), 1), liwork = std::max<I>(iq, 1);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<I> iwork(static_cast<std::size_t>(liwork));
  f.syevd(&jobz, &uplo, &n, A.data(), &lda, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  return int(info);
}

template <class I>
int gesdd_t(const Fns<I>& f, Eigen::MatrixXd& A, Eigen::VectorXd& s, Eigen::MatrixXd& U, Eigen::MatrixXd& Vt,
            bool vectors) {
  const I m = I(A.rows()), n = I(A.cols()), k = std::min(m, n), lda = std::max<I>(1, m), query = -1;
  const char jobz = vectors ? 'S' : 'N';
  s.resize(k);
  if (vectors) {
    U.resize(m, k);
    Vt.resize(k, n);
  }
  const I ldu = vectors ? std::max<I>(1, m) : 1, ldvt = vectors ? std::max<I>(1, k) : 1;
  double ud = 0, vd = 0;  // not referenced without vectors
  double* up = vectors ? U.data() : &ud;
  double* vp = vectors ? Vt.data() : &vd;
  std::vector<I> iwork(std::size_t(8) * std::size_t(std::max<I>(k, 1)));
  double wq = 0;
  I info = 0;
  f.gesdd(&jobz, &m, &n, A.data(), &lda, s.data(), up, &ldu, vp, &ldvt, &wq, &query, iwork.data(), &info, 1);
  if (info != 0) return int(info);
  if (wq >= double(std::numeric_limits<I>::max())) return kUnavailable;
  const I lwork = std::max<I>(I(wq), 1);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  f.gesdd(&jobz, &m, &n, A.data(), &lda, s.data(), up, &ldu, vp, &ldvt, work.data(), &lwork, iwork.data(), &info, 1);
  return int(info);
}

template <class I>
int gees_t(const Fns<I>& f, Eigen::MatrixXd& A, Eigen::MatrixXd& Z) {
  const I n = I(A.rows()), lda = std::max<I>(1, n), query = -1;
  const char jobvs = 'V', sort = 'N';
  Z.resize(n, n);
  std::vector<double> wr(std::size_t(std::max<I>(n, 1))), wi(wr.size());
  std::vector<I> bwork(wr.size());  // not referenced without sorting
  I sdim = 0, info = 0;
  double wq = 0;
  f.gees(&jobvs, &sort, nullptr, &n, A.data(), &lda, &sdim, wr.data(), wi.data(), Z.data(), &lda, &wq, &query,
         bwork.data(), &info, 1, 1);
  if (info != 0) return int(info);
  if (wq >= double(std::numeric_limits<I>::max())) return kUnavailable;
  const I lwork = std::max<I>(I(wq), 1);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  f.gees(&jobvs, &sort, nullptr, &n, A.data(), &lda, &sdim, wr.data(), wi.data(), Z.data(), &lda, work.data(), &lwork,
         bwork.data(), &info, 1, 1);
  return int(info);
}

template <class I>
int zgees_t(const Fns<I>& f, Eigen::MatrixXcd& A, Eigen::MatrixXcd& Z) {
  const I n = I(A.rows()), lda = std::max<I>(1, n), query = -1;
  const char jobvs = 'V', sort = 'N';
  Z.resize(n, n);
  std::vector<std::complex<double>> w(std::size_t(std::max<I>(n, 1)));
  std::vector<double> rwork(w.size());
  std::vector<I> bwork(w.size());  // not referenced without sorting
  I sdim = 0, info = 0;
  std::complex<double> wq = 0;
  f.zgees(&jobvs, &sort, nullptr, &n, A.data(), &lda, &sdim, w.data(), Z.data(), &lda, &wq, &query, rwork.data(),
          bwork.data(), &info, 1, 1);
  if (info != 0) return int(info);
  if (wq.real() >= double(std::numeric_limits<I>::max())) return kUnavailable;
  const I lwork = std::max<I>(I(wq.real()), 1);
  std::vector<std::complex<double>> work(static_cast<std::size_t>(lwork));
  f.zgees(&jobvs, &sort, nullptr, &n, A.data(), &lda, &sdim, w.data(), Z.data(), &lda, work.data(), &lwork,
          rwork.data(), bwork.data(), &info, 1, 1);
  return int(info);
}

template <class I>
int trsyl_t(const Fns<I>& f, const Eigen::MatrixXd& A, const Eigen::MatrixXd& B, Eigen::MatrixXd& C, double& scale) {
  const I m = I(A.rows()), n = I(B.rows()), one = 1, lda = std::max<I>(1, m), ldb = std::max<I>(1, n);
  const char tr = 'N';
  I info = 0;
  f.trsyl(&tr, &tr, &one, &m, &n, A.data(), &lda, B.data(), &ldb, C.data(), &lda, &scale, &info, 1, 1);
  return int(info);
}

// ---- finding one ----
#if MATGRAD_LAPACK_DL
std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

template <class I>
bool bind(void* h, const char* pre, const char* suf, Fns<I>& f) {
  auto sym = [&](const char* base) { return dlsym(h, (std::string(pre) + base + suf).c_str()); };
  f.syevd = reinterpret_cast<typename Fns<I>::syevd_t>(sym("dsyevd"));
  f.gesdd = reinterpret_cast<typename Fns<I>::gesdd_t>(sym("dgesdd"));
  f.gees = reinterpret_cast<typename Fns<I>::gees_t>(sym("dgees"));
  f.trsyl = reinterpret_cast<typename Fns<I>::trsyl_t>(sym("dtrsyl"));
  f.zgees = reinterpret_cast<typename Fns<I>::zgees_t>(sym("zgees"));
  return f.syevd && f.gesdd && f.gees && f.trsyl && f.zgees;
}

// A 3 x 3 symmetric matrix with eigenvalues 1, 2, 4 and a 3 x 2 one with singular values 3, 1
// (by construction from orthogonal factors), and a triangular one whose Schur form is itself.
template <class I>
bool self_test(const Fns<I>& f) {
  Eigen::MatrixXd Q(3, 3);
  Q << 2, -1, 2, 2, 2, -1, -1, 2, 2;  // 3 Q is orthogonal
  Q /= 3.0;
  Eigen::MatrixXd S = Q * Eigen::Vector3d(1, 2, 4).asDiagonal() * Q.transpose();
  Eigen::VectorXd w;
  if (syevd_t(f, S, w, true) != 0 || w.size() != 3 || std::abs(w(0) - 1) > 1e-12 || std::abs(w(1) - 2) > 1e-12 ||
      std::abs(w(2) - 4) > 1e-12)
    return false;
  Eigen::MatrixXd A = Q.leftCols(2) * Eigen::Vector2d(3, 1).asDiagonal();
  Eigen::VectorXd s;
  Eigen::MatrixXd U, Vt;
  if (gesdd_t(f, A, s, U, Vt, true) != 0 || s.size() != 2 || std::abs(s(0) - 3) > 1e-12 || std::abs(s(1) - 1) > 1e-12 ||
      U.rows() != 3 || Vt.cols() != 2)
    return false;
  Eigen::MatrixXd T(2, 2), Z;
  T << 1, 5, 0, 2;
  if (gees_t(f, T, Z) != 0 || std::abs(T(1, 0)) != 0.0 || std::abs(std::abs(Z(0, 0)) - 1) > 1e-12) return false;
  // T X + X T = C with X = [[1, 0], [0, 1]]: C = 2 T
  Eigen::MatrixXd C = 2 * T;
  double scale = 0;
  if (trsyl_t(f, T, T, C, scale) != 0 || scale != 1.0 || (C - Eigen::MatrixXd::Identity(2, 2)).norm() > 1e-12)
    return false;
  // a rotation by 90 degrees: eigenvalues +-i, on the diagonal of its complex Schur form
  Eigen::MatrixXcd R(2, 2), Zc;
  R << 0.0, -1.0, 1.0, 0.0;
  return zgees_t(f, R, Zc) == 0 && std::abs(std::abs(R(0, 0).imag()) - 1) < 1e-12 && std::abs(R(1, 0)) == 0.0 &&
         std::abs(R(0, 0) + R(1, 1)) < 1e-12;
}

// The integer width, from ilaver(major, minor, patch) called with three int64 slots set to -1:
// an ILP64 library writes whole slots (major = 3), an LP64 one only their low halves (the high
// halves stay all ones). Safe for either width on a little-endian machine, unlike any call that
// takes sizes. 0: not a LAPACK 3 we can tell; 4 or 8: the bytes of its INTEGER.
int integer_width(void* ilaver) {
  if (!ilaver) return 0;
  std::int64_t v[3] = {-1, -1, -1};
  reinterpret_cast<void (*)(std::int64_t*, std::int64_t*, std::int64_t*)>(ilaver)(&v[0], &v[1], &v[2]);
  if (v[0] >= 3 && v[0] < 100) return 8;
  const std::uint64_t u = static_cast<std::uint64_t>(v[0]);
  if ((u >> 32) == 0xFFFFFFFFu && (u & 0xFFFFFFFFu) >= 3 && (u & 0xFFFFFFFFu) < 100) return 4;
  return 0;
}

bool try_library(void* h, const std::string& path) {
  if (!h) return false;
  struct Flavour {
    const char *pre, *suf;
  };
  const Flavour flavours[] = {{"scipy_", "_64_"}, {"", "_64_"}, {"scipy_", "_"}, {"", "_"}};
  for (const Flavour& fl : flavours) {
    const int width = integer_width(dlsym(h, (std::string(fl.pre) + "ilaver" + fl.suf).c_str()));
    bool ok = false;
    if (width == 8) {
      Fns<std::int64_t> f;
      ok = bind(h, fl.pre, fl.suf, f) && self_test(f);
      if (ok) g_state.f64 = f;
    } else if (width == 4) {
      Fns<std::int32_t> f;
      ok = bind(h, fl.pre, fl.suf, f) && self_test(f);
      if (ok) g_state.f32 = f;
    }
    if (ok) {
      g_state.found = true;
      g_state.ilp64 = width == 8;
      char* real = realpath(path.c_str(), nullptr);  // the loader's name may hold ../
      g_state.backend = std::string(real ? real : path.c_str()) + " (" + fl.pre + "dsyevd" + fl.suf +
                        (width == 8 ? ", ILP64)" : ", LP64)");
      std::free(real);
      return true;
    }
  }
  dlclose(h);  // not one we can use: give back the reference
  return false;
}

int collect(dl_phdr_info* info, std::size_t, void* data) {
  if (info->dlpi_name && *info->dlpi_name) {
    const std::string path = info->dlpi_name;
    const std::string name = lower(path.substr(path.find_last_of('/') + 1));
    if (name.find("openblas") != std::string::npos || name.find("lapack") != std::string::npos)
      static_cast<std::vector<std::string>*>(data)->push_back(path);
  }
  return 0;
}
#endif

void find() {
#if MATGRAD_LAPACK_DL
  const char* env = std::getenv("MATGRAD_LAPACK");
  const std::string want = env ? env : "";
  if (lower(want) == "off" || want == "0") return;
  if (!want.empty() && lower(want) != "on" && want != "1") {
    // an explicit library: loaded for good (never dlclosed: its functions are kept)
    if (try_library(dlopen(want.c_str(), RTLD_NOW | RTLD_LOCAL), want)) return;
  }
  std::vector<std::string> loaded;
  dl_iterate_phdr(collect, &loaded);
  for (const std::string& path : loaded) {
    // already loaded: RTLD_NOLOAD only takes a reference, which is kept with the functions
    if (try_library(dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD), path)) return;
  }
#endif
}

const State* state() {
  std::call_once(g_once, find);
  return g_state.found && g_use.load(std::memory_order_relaxed) ? &g_state : nullptr;
}

}  // namespace

bool available() { return state() != nullptr; }

const char* backend() {
  const State* s = state();
  return s ? s->backend.c_str() : "eigen";
}

bool select(bool use_lapack) {
  g_use.store(use_lapack, std::memory_order_relaxed);
  return available();
}

int syevd(Eigen::MatrixXd& A, Eigen::VectorXd& w, bool vectors) {
  const State* s = state();
  if (!s || (!s->ilp64 && A.rows() > kMaxLp64)) return kUnavailable;
  return s->ilp64 ? syevd_t(s->f64, A, w, vectors) : syevd_t(s->f32, A, w, vectors);
}

int gesdd(Eigen::MatrixXd& A, Eigen::VectorXd& s, Eigen::MatrixXd& U, Eigen::MatrixXd& Vt, bool vectors) {
  const State* st = state();
  if (!st || (!st->ilp64 && std::max(A.rows(), A.cols()) > kMaxLp64)) return kUnavailable;
  return st->ilp64 ? gesdd_t(st->f64, A, s, U, Vt, vectors) : gesdd_t(st->f32, A, s, U, Vt, vectors);
}

int gees(Eigen::MatrixXd& A, Eigen::MatrixXd& Z) {
  const State* s = state();
  if (!s || (!s->ilp64 && A.rows() > kMaxLp64)) return kUnavailable;
  return s->ilp64 ? gees_t(s->f64, A, Z) : gees_t(s->f32, A, Z);
}

int zgees(Eigen::MatrixXcd& A, Eigen::MatrixXcd& Z) {
  const State* s = state();
  if (!s || (!s->ilp64 && A.rows() > kMaxLp64)) return kUnavailable;
  return s->ilp64 ? zgees_t(s->f64, A, Z) : zgees_t(s->f32, A, Z);
}

int trsyl(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B, Eigen::MatrixXd& C, double& scale) {
  const State* s = state();
  if (!s || (!s->ilp64 && std::max(A.rows(), B.rows()) > kMaxLp64)) return kUnavailable;
  if (C.rows() != A.rows() || C.cols() != B.rows()) return -10;  // LAPACK's code for a bad C
  return s->ilp64 ? trsyl_t(s->f64, A, B, C, scale) : trsyl_t(s->f32, A, B, C, scale);
}

}  // namespace matgrad::lapack

namespace matgrad {
const char* linalg_backend() { return lapack::backend(); }
bool set_linalg_backend(bool use_lapack) { return lapack::select(use_lapack); }
}  // namespace matgrad
