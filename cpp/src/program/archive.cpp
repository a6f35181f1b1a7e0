// SPDX-License-Identifier: MIT
// The binary archive of programs (docs/compile.md, "The file format").
//
// Note [program archives]
// Little-endian throughout. A 32-byte header: the magic "\x89MGPROG\n" (the first byte catches
// a text-mode copy, the newline a line-ending conversion), the format version (u32), flags (u32,
// 0), the payload's size (u64) and its FNV-1a 64-bit checksum (u64). The payload: the meta text,
// the argnums, a table of the op names the programs use (ops are named, never numbered: numbers
// change as ops are added), then the entries, each a key, a kind and a program (slots, constants,
// attributes, instruction records, inputs, outputs). The reader checks every count and index
// against what is left of the payload before it allocates, refuses what it does not know, and
// validates each program by its ops' own shape rules, so a truncated, corrupt or crafted file is
// a ValueError, never an out-of-bounds read. The fused loops and the memory plan are not stored:
// they are made again.
#include <matgrad/error.hpp>
#include <matgrad/ops.hpp>
#include <matgrad/program.hpp>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace matgrad {

namespace {

constexpr char kMagic[8] = {'\x89', 'M', 'G', 'P', 'R', 'O', 'G', '\n'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeader = 32;

std::uint64_t fnv1a(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  std::string out;
  template <class T> void put(T v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // this format is little-endian, as every platform we build on
    out.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  void str(const std::string& s) {
    put<std::uint32_t>(std::uint32_t(s.size()));
    out += s;
  }
  void shape(const Shape& s) {
    put<std::int8_t>(s.ndim);
    put<std::int64_t>(s.rows);
    put<std::int64_t>(s.cols);
  }
};

class Reader {
 public:
  Reader(const unsigned char* p, std::size_t n) : p_(p), n_(n) {}
  [[noreturn]] static void fail(const std::string& what) { throw ValueError("load: " + what); }
  std::size_t left() const { return n_ - at_; }
  template <class T> T get(const char* what) {
    if (left() < sizeof(T)) fail(std::string("the file is truncated (in ") + what + ")");
    T v;
    std::memcpy(&v, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const std::uint32_t n = get<std::uint32_t>(what);
    if (n > left()) fail(std::string("the file is truncated (in ") + what + ")");
    std::string s(reinterpret_cast<const char*>(p_ + at_), n);
    at_ += n;
    return s;
  }
  // A count of items of at least `min_bytes` each: no more than what is left could hold.
  std::uint32_t count(const char* what, std::size_t min_bytes) {
    const std::uint32_t n = get<std::uint32_t>(what);
    if (std::size_t(n) * min_bytes > left()) fail(std::string("the file is truncated or corrupt (") + what + ")");
    return n;
  }
  Shape shape(const char* what) {
    Shape s;
    s.ndim = get<std::int8_t>(what);
    s.rows = get<std::int64_t>(what);
    s.cols = get<std::int64_t>(what);
    if (s.ndim < 0 || s.ndim > 2 || !s.representable()) fail(std::string("an invalid shape (") + what + ")");
    return s;
  }
  DType dtype(const char* what) {
    const std::uint8_t d = get<std::uint8_t>(what);
    if (d > 1) fail(std::string("an unknown dtype (") + what + ")");
    return DType(d);
  }
  const unsigned char* bytes(std::size_t n, const char* what) {
    if (n > left()) fail(std::string("the file is truncated (in ") + what + ")");
    const unsigned char* b = p_ + at_;
    at_ += n;
    return b;
  }

 private:
  const unsigned char* p_;
  std::size_t n_;
  std::size_t at_ = 0;
};

void write_program(Writer& w, const Program& p, std::unordered_map<std::uint16_t, std::uint32_t>& ops) {
  w.put<std::uint32_t>(std::uint32_t(p.slots.size()));
  for (const Slot& s : p.slots) {
    const bool temp = s.kind == SlotKind::temp || s.kind == SlotKind::block;  // the plan is made again
    w.put<std::uint8_t>(std::uint8_t(temp ? SlotKind::temp : s.kind));
    w.put<std::uint8_t>(std::uint8_t(s.dtype));
    w.shape(s.shape);
    w.put<std::int64_t>(s.batch);
    w.put<std::int64_t>(temp ? -1 : s.index);
  }
  w.put<std::uint32_t>(std::uint32_t(p.constants.size()));
  for (const Val& c : p.constants) {
    w.put<std::uint8_t>(std::uint8_t(c.dtype()));
    w.put<std::int64_t>(c.shape().size());
    w.out.append(static_cast<const char*>(c.data()), std::size_t(c.shape().size()) * itemsize(c.dtype()));
  }
  w.put<std::uint32_t>(std::uint32_t(p.attrs.size()));
  for (const Attr& a : p.attrs) {
    w.put<double>(a.s);
    w.put<std::int32_t>(a.axis);
    w.put<std::uint8_t>(a.ta);
    w.put<std::uint8_t>(a.tb);
    w.put<std::uint8_t>(std::uint8_t(a.dtype));
    w.shape(a.shape);
    w.put<std::int64_t>(a.offset);
    w.put<std::int64_t>(a.offset2);
  }
  w.put<std::uint32_t>(std::uint32_t(p.args.size()));
  for (std::uint32_t a : p.args) w.put<std::uint32_t>(a);
  w.put<std::uint32_t>(std::uint32_t(p.code.size()));
  for (const Instr& ins : p.code) {
    w.put<std::uint32_t>(ops.at(ins.op.v));
    w.put<std::uint16_t>(ins.nin);
    w.put<std::uint32_t>(ins.attr);
    w.put<std::uint32_t>(ins.in);
    w.put<std::uint32_t>(ins.out);
  }
  w.put<std::uint32_t>(std::uint32_t(p.inputs.size()));
  for (std::uint32_t s : p.inputs) w.put<std::uint32_t>(s);
  w.put<std::uint32_t>(std::uint32_t(p.outputs.size()));
  for (std::uint32_t s : p.outputs) w.put<std::uint32_t>(s);
}

std::shared_ptr<const Program> read_program(Reader& r, const std::vector<OpId>& ops) {
  auto p = std::make_shared<Program>();
  const std::uint32_t ns = r.count("slots", 35);
  p->slots.resize(ns);
  for (Slot& s : p->slots) {
    const std::uint8_t kind = r.get<std::uint8_t>("a slot");
    if (kind > std::uint8_t(SlotKind::view)) Reader::fail("a slot of an unknown kind");
    s.kind = SlotKind(kind);
    s.dtype = r.dtype("a slot");
    s.shape = r.shape("a slot");
    s.batch = r.get<std::int64_t>("a slot");
    s.index = r.get<std::int64_t>("a slot");
    if (s.batch < 0 || s.batch > (std::int64_t(1) << 40)) Reader::fail("a slot of an invalid batch");
  }
  const std::uint32_t nc = r.count("constants", 9);
  for (std::uint32_t i = 0; i < nc; ++i) {
    const DType d = r.dtype("a constant");
    const std::int64_t n = r.get<std::int64_t>("a constant");
    if (n < 0 || std::uint64_t(n) > r.left() / itemsize(d)) Reader::fail("the file is truncated (in a constant)");
    const unsigned char* b = r.bytes(std::size_t(n) * itemsize(d), "a constant");
    Val v = Val::empty(Shape::vector(n), d);
    std::memcpy(v.data(), b, std::size_t(n) * itemsize(d));
    p->constants.push_back(std::move(v));
  }
  const std::uint32_t na = r.count("attributes", 48);
  p->attrs.resize(na);
  for (Attr& a : p->attrs) {
    a.s = r.get<double>("an attribute");
    a.axis = r.get<std::int32_t>("an attribute");
    a.ta = r.get<std::uint8_t>("an attribute") != 0;
    a.tb = r.get<std::uint8_t>("an attribute") != 0;
    a.dtype = r.dtype("an attribute");
    a.shape = r.shape("an attribute");
    a.offset = r.get<std::int64_t>("an attribute");
    a.offset2 = r.get<std::int64_t>("an attribute");
  }
  const std::uint32_t nargs = r.count("arguments", 4);
  p->args.resize(nargs);
  for (std::uint32_t& a : p->args) a = r.get<std::uint32_t>("an argument");
  const std::uint32_t ni = r.count("instructions", 18);
  p->code.resize(ni);
  for (Instr& ins : p->code) {
    const std::uint32_t op = r.get<std::uint32_t>("an instruction");
    if (op >= ops.size()) Reader::fail("an instruction names no op of the table");
    ins.op = ops[op];
    ins.nin = r.get<std::uint16_t>("an instruction");
    ins.attr = r.get<std::uint32_t>("an instruction");
    ins.in = r.get<std::uint32_t>("an instruction");
    ins.out = r.get<std::uint32_t>("an instruction");
  }
  for (auto* list : {&p->inputs, &p->outputs}) {
    const std::uint32_t n = r.count("inputs and outputs", 4);
    list->resize(n);
    for (std::uint32_t& s : *list) s = r.get<std::uint32_t>("an input or output");
  }
  try {
    p->validate();
  } catch (const ValueError& e) {
    Reader::fail(std::string("a corrupt program: ") + e.what());
  }
  fuse_elementwise(*p);
  plan_memory(*p);
  return p;
}

}  // namespace

std::string save_programs(const ProgramArchive& a) {
  // the op table: every op the programs use, by name
  std::unordered_map<std::uint16_t, std::uint32_t> ops;
  std::vector<OpId> table;
  for (const auto& e : a.entries)
    for (const Instr& ins : e.program->code)
      if (ops.emplace(ins.op.v, std::uint32_t(table.size())).second) table.push_back(ins.op);
  Writer w;
  w.str(a.meta);
  w.put<std::uint32_t>(std::uint32_t(a.argnums.size()));
  for (int n : a.argnums) w.put<std::int32_t>(n);
  w.put<std::uint32_t>(std::uint32_t(table.size()));
  for (OpId op : table) w.str(op_name(op));
  w.put<std::uint32_t>(std::uint32_t(a.entries.size()));
  for (const auto& e : a.entries) {
    w.str(e.key);
    w.str(e.kind);
    write_program(w, *e.program, ops);
  }
  Writer h;
  h.out.append(kMagic, sizeof(kMagic));
  h.put<std::uint32_t>(kVersion);
  h.put<std::uint32_t>(0);
  h.put<std::uint64_t>(w.out.size());
  h.put<std::uint64_t>(fnv1a(reinterpret_cast<const unsigned char*>(w.out.data()), w.out.size()));
  return h.out + w.out;
}

ProgramArchive load_programs(const std::string& bytes) {
  if (bytes.empty()) Reader::fail("the file is empty");
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    Reader::fail("not a matgrad program file (its first bytes are not matgrad's magic number)");
  if (bytes.size() < kHeader) Reader::fail("the file is truncated (in its header)");
  Reader h(reinterpret_cast<const unsigned char*>(bytes.data()) + sizeof(kMagic), kHeader - sizeof(kMagic));
  const std::uint32_t version = h.get<std::uint32_t>("the header");
  const std::uint32_t flags = h.get<std::uint32_t>("the header");
  const std::uint64_t size = h.get<std::uint64_t>("the header");
  const std::uint64_t sum = h.get<std::uint64_t>("the header");
  if (version != kVersion)
    Reader::fail("format version " + std::to_string(version) + " is not supported (this matgrad reads version " +
                 std::to_string(kVersion) + ")");
  if (flags != 0) Reader::fail("unknown flags in the header");
  if (size != bytes.size() - kHeader)
    Reader::fail("the file is truncated or has extra bytes (" + std::to_string(bytes.size() - kHeader) +
                 " payload bytes, the header says " + std::to_string(size) + ")");
  const auto* payload = reinterpret_cast<const unsigned char*>(bytes.data()) + kHeader;
  if (fnv1a(payload, std::size_t(size)) != sum) Reader::fail("the checksum does not match: the file is corrupt");
  Reader r(payload, std::size_t(size));
  ProgramArchive a;
  a.meta = r.str("the meta text");
  const std::uint32_t nargs = r.count("argnums", 4);
  for (std::uint32_t i = 0; i < nargs; ++i) a.argnums.push_back(r.get<std::int32_t>("argnums"));
  const std::uint32_t nops = r.count("the op table", 4);
  std::vector<OpId> ops;
  for (std::uint32_t i = 0; i < nops; ++i) {
    const std::string name = r.str("the op table");
    try {
      ops.push_back(op_id(name.c_str()));
    } catch (const ValueError&) {
      Reader::fail("the file uses op '" + name + "', which this matgrad does not have");
    }
  }
  const std::uint32_t ne = r.count("entries", 8);
  for (std::uint32_t i = 0; i < ne; ++i) {
    ProgramArchive::Entry e;
    e.key = r.str("an entry's key");
    e.kind = r.str("an entry's kind");
    e.program = read_program(r, ops);
    a.entries.push_back(std::move(e));
  }
  if (r.left()) Reader::fail("the payload has " + std::to_string(r.left()) + " bytes after its last entry");
  return a;
}

}  // namespace matgrad
