// SPDX-License-Identifier: MIT
// libFuzzer harness over the program archive reader, matgrad::load_programs (Note [program
// archives] in cpp/src/program/archive.cpp). Built with -DMATGRAD_FUZZ=ON under clang (with
// -fsanitize=fuzzer,address,undefined); tools/fuzz-cpp.sh runs it on cpp/fuzz/corpus.
//
// Each input is loaded twice: as given, and with its header's payload size and checksum made
// right (or, for bytes without the magic number, wrapped as the payload of a valid header), so
// that mutations reach the payload's parser instead of stopping at the checksum. A load must
// succeed or throw matgrad::ValueError; anything else (another exception, a sanitizer report,
// a crash) is a finding. An archive that loads is then exercised:
//   - each program validates again, and prints (str, to_dot);
//   - it runs on inputs of the declared shapes and dtypes (when small enough to be quick):
//     results of the declared shapes, or a matgrad::Error (a singular matrix), nothing else;
//     a wrong number of inputs must be a TypeError, an input of another shape a ShapeError;
//   - it saves, loads again (which must succeed) and saves to the same bytes, and the reloaded
//     program gives the same results bit for bit.
#include <matgrad/error.hpp>
#include <matgrad/program.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using matgrad::DType;
using matgrad::Program;
using matgrad::Shape;
using matgrad::Val;

constexpr char kMagic[8] = {'\x89', 'M', 'G', 'P', 'R', 'O', 'G', '\n'};
constexpr std::size_t kHeader = 32;
// Programs larger than this are loaded, checked and saved, not run (a replay of a 2^40-element
// broadcast, or of a thousand 1000 x 1000 products, is the program's business, not the reader's,
// and would only be slow): at most 2^12 elements per value (a 64 x 64 matrix: a product or an
// inverse is 2^18 multiply-adds), 2^18 in all the instructions' results.
constexpr std::int64_t kMaxRunElements = std::int64_t(1) << 12;
constexpr std::int64_t kMaxRunResults = std::int64_t(1) << 18;
constexpr std::size_t kMaxRunWorkspace = std::size_t(8) << 20;

[[noreturn]] void finding(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_load_programs: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

std::uint64_t fnv1a(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// `payload` behind a valid version-1 header.
std::string with_header(const std::string& payload) {
  std::string out(kMagic, sizeof(kMagic));
  auto put = [&out](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  put(std::uint32_t(1));
  put(std::uint32_t(0));
  put(std::uint64_t(payload.size()));
  put(fnv1a(reinterpret_cast<const unsigned char*>(payload.data()), payload.size()));
  return out + payload;
}

bool small_enough(const Program& p) {
  if (p.workspace_bytes > kMaxRunWorkspace) return false;
  for (const matgrad::Slot& s : p.slots)
    if (s.elements() > kMaxRunElements) return false;
  std::int64_t results = 0;
  for (const matgrad::Instr& ins : p.code) results += p.slots[ins.out].elements();
  return results <= kMaxRunResults;
}

Val make_input(const matgrad::Slot& s, std::uint64_t seed) {
  static const double table[] = {0.5, -1.25, 2.0, 0.75, 3.5, -0.125, 1.0, -2.5, 0.3, 1.7, -0.9};
  Val v = Val::empty(s.shape, s.dtype);
  for (std::int64_t i = 0; i < s.shape.size(); ++i) {
    const double x = table[(std::uint64_t(i) * 7 + seed) % (sizeof(table) / sizeof(table[0]))] + 0.01 * double(i % 13);
    if (s.dtype == DType::f64)
      v.ptr<double>()[i] = x;
    else
      v.ptr<float>()[i] = float(x);
  }
  return v;
}

// The program's results on `in`, or false when it threw a matgrad::Error.
bool run(const Program& p, const std::vector<Val>& in, std::vector<Val>& out) {
  try {
    out = p.run(in);
  } catch (const matgrad::Error&) {
    return false;
  }
  if (out.size() != p.outputs.size()) finding("run returned another number of results than the program has");
  for (std::size_t k = 0; k < out.size(); ++k) {
    const matgrad::Slot& s = p.slots[p.outputs[k]];
    const Shape want = s.batch ? Shape::matrix(s.batch, s.shape.size()) : s.shape;
    if (!out[k] || out[k].shape() != want || out[k].dtype() != s.dtype)
      finding("a result of another shape or dtype than its slot", std::to_string(k));
  }
  return true;
}

bool same_bits(const std::vector<Val>& a, const std::vector<Val>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (a[k].shape() != b[k].shape() || a[k].dtype() != b[k].dtype() ||
        std::memcmp(a[k].data(), b[k].data(), std::size_t(a[k].shape().size()) * matgrad::itemsize(a[k].dtype())) != 0)
      return false;
  return true;
}

void exercise_program(const Program& p, const Program& again) {
  try {
    p.validate();
  } catch (const matgrad::Error& e) {
    finding("a loaded program does not validate", e.what());
  }
  (void)p.str();
  (void)p.to_dot();
  if (!small_enough(p)) return;
  std::vector<Val> in;
  for (std::size_t i = 0; i < p.inputs.size(); ++i) in.push_back(make_input(p.slots[p.inputs[i]], i));
  std::vector<Val> r1, r2, r3;
  const bool ok = run(p, in, r1);
  if (ok && run(p, in, r2) && !same_bits(r1, r2)) finding("two runs on the same inputs differ");
  if (run(again, in, r3) != ok || (ok && !same_bits(r1, r3)))
    finding("the program saved and loaded again gives other results");
  // bad calls: the wrong number of inputs, an input of another shape
  try {
    std::vector<Val> more = in;
    more.push_back(Val::empty(Shape::scalar(), DType::f64));
    (void)p.run(more);
    finding("a call with one input too many ran");
  } catch (const matgrad::TypeError&) {
  }
  if (!in.empty()) {
    std::vector<Val> other = in;
    const Shape s = in[0].shape();
    other[0] = Val::empty(s.ndim == 2 ? Shape::vector(s.size()) : Shape::matrix(1, s.size()), in[0].dtype());
    try {
      (void)p.run(other);
      finding("a call with an input of another shape ran");
    } catch (const matgrad::ShapeError&) {
    }
  }
}

void exercise(const std::string& bytes) {
  matgrad::ProgramArchive a;
  try {
    a = matgrad::load_programs(bytes);
  } catch (const matgrad::ValueError&) {
    return;  // refused, as it should be
  }
  const std::string saved = matgrad::save_programs(a);
  matgrad::ProgramArchive b;
  try {
    b = matgrad::load_programs(saved);
  } catch (const matgrad::Error& e) {
    finding("an archive saved from loaded programs does not load", e.what());
  }
  if (matgrad::save_programs(b) != saved) finding("saving a loaded archive again gives other bytes");
  if (b.meta != a.meta || b.argnums != a.argnums || b.entries.size() != a.entries.size())
    finding("the archive saved and loaded again differs");
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    if (b.entries[i].key != a.entries[i].key || b.entries[i].kind != a.entries[i].kind)
      finding("an entry saved and loaded again differs");
    exercise_program(*a.entries[i].program, *b.entries[i].program);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  exercise(bytes);
  if (size >= kHeader && std::memcmp(data, kMagic, sizeof(kMagic)) == 0) {
    const std::string fixed = with_header(bytes.substr(kHeader));
    if (fixed != bytes) exercise(fixed);
  } else {
    exercise(with_header(bytes));
  }
  return 0;
}
