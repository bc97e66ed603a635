#include "core/tensor.h"

#include <cstdlib>
#include <sstream>

namespace minisinga {

std::string ShapeStr(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); i++) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

int64_t Numel(const Shape& s) {
  // The non-zero sizes must multiply within 64 bits even where one size is 0, as numpy's.
  int64_t n = 1;
  bool empty = false;
  for (auto d : s) {
    empty = empty || d == 0;
    MS_CHECK(d == 0 || !__builtin_mul_overflow(n, d, &n),
             "shape " << ShapeStr(s) << " is too big: its sizes multiply beyond a 64-bit count");
  }
  return empty ? 0 : n;
}

int64_t AddSize(int64_t a, int64_t b, const char* op, const char* what) {
  int64_t r = 0;
  MS_CHECK(!__builtin_add_overflow(a, b, &r),
           op << ": " << what << " (" << a << " + " << b << ") overflows a 64-bit size");
  return r;
}

int64_t MulSize(int64_t a, int64_t b, const char* op, const char* what) {
  int64_t r = 0;
  MS_CHECK(!__builtin_mul_overflow(a, b, &r),
           op << ": " << what << " (" << a << " * " << b << ") overflows a 64-bit size");
  return r;
}

int64_t EnvCount(const char* var, int64_t fallback, const char* expected) {
  const char* env = std::getenv(var);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  MS_CHECK(*end == '\0' && v >= 0, var << " must be " << expected << ", got '" << env << "'");
  return static_cast<int64_t>(v);
}

Tensor::Tensor(const Shape& shape, Device* dev, DType dtype)
    : shape_(shape), dtype_(dtype), dev_(dev) {
  MS_CHECK(dev != nullptr, "Tensor: no device given");
  for (auto d : shape)
    MS_CHECK(d >= 0, "Tensor: negative dimension in shape " << ShapeStr(shape));
  // Bytes must fit an int64 (pointer offsets) with room for the pool's rounding.
  int64_t bytes = 0;
  MS_CHECK(!__builtin_mul_overflow(numel(), static_cast<int64_t>(SizeOf(dtype)), &bytes) &&
               bytes <= (int64_t{1} << 56),
           "Tensor: shape " << ShapeStr(shape) << " of " << DTypeName(dtype)
                            << " needs more bytes than any device has (at most 2^56)");
  block_ = std::make_shared<Block>(dev, nbytes());
}

int64_t Tensor::shape(int axis) const { return shape_[NormAxis(axis, ndim(), "shape")]; }

Tensor Tensor::Reshape(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == -1) {
      MS_CHECK(infer < 0, "reshape: only one dimension may be -1, got " << ShapeStr(shape));
      infer = static_cast<int>(i);
    } else {
      MS_CHECK(s[i] >= 0, "reshape: invalid dimension in " << ShapeStr(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    MS_CHECK(known > 0 && numel() % known == 0,
             "reshape: cannot reshape " << ShapeStr(shape_) << " into " << ShapeStr(shape));
    s[infer] = numel() / known;
  }
  MS_CHECK(Numel(s) == numel(), "reshape: cannot reshape tensor of shape "
                                    << ShapeStr(shape_) << " (" << numel() << " elements) into "
                                    << ShapeStr(shape));
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::SliceRows(int64_t start, int64_t stop) const {
  MS_CHECK(ndim() >= 1, "slice_rows: tensor has no rows (shape " << ShapeStr(shape_) << ")");
  MS_CHECK(0 <= start && start <= stop && stop <= shape_[0],
           "slice_rows: [" << start << ", " << stop << ") is outside [0, " << shape_[0] << "]");
  Tensor t = *this;
  int64_t row = numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  t.shape_[0] = stop - start;
  t.offset_ = offset_ + start * row * SizeOf(dtype_);
  return t;
}

std::string Tensor::Repr() const {
  std::ostringstream os;
  os << "Tensor(shape=" << ShapeStr(shape_) << ", dtype=" << DTypeName(dtype_)
     << ", device=" << (dev_ ? dev_->name() : "none") << ")";
  return os.str();
}

int NormAxis(int64_t axis, int ndim, const char* op) {
  MS_CHECK(axis >= -ndim && axis < ndim, op << ": axis " << axis << " is out of range for a "
                                            << ndim << "-d tensor");
  return static_cast<int>(axis < 0 ? axis + ndim : axis);
}

void CheckSameDevice(const char* op, const Tensor& a, const Tensor& b) {
  MS_CHECK_TYPE(a.device() == b.device(), op << ": tensors are on different devices ("
                                             << a.device()->name() << " and "
                                             << b.device()->name() << ")");
}

void CheckDType(const char* op, const Tensor& t, std::initializer_list<DType> allowed,
                const char* what) {
  for (auto d : allowed)
    if (t.dtype() == d) return;
  std::ostringstream os;
  bool first = true;
  for (auto d : allowed) {
    os << (first ? "" : " or ") << DTypeName(d);
    first = false;
  }
  MS_THROW_(TypeError, op << ": " << what << " has dtype " << DTypeName(t.dtype())
                          << ", expected " << os.str());
}

void CheckFloat(const char* op, const Tensor& t, const char* what) {
  CheckDType(op, t, {DType::kFloat32, DType::kFloat16}, what);
}

void RaiseIfFlagged(Context* ctx, const int32_t* flag, const std::string& msg) {
  MS_CHECK(ctx->is_cuda() || *flag == 0, msg);
}

void CheckFlag(const Tensor& flag, const std::string& msg) {
  Device* dev = flag.device();
  if (dev->graph_enabled()) {
    dev->AddFaultFlag(flag.block(), msg);
    return;
  }
  if (!dev->is_cuda()) return;  // RaiseIfFlagged has looked
  int32_t v = 0;
  dev->CopyToHost(&v, flag.ref().data<char>(), sizeof(v));
  MS_CHECK(v == 0, msg);
}

}  // namespace minisinga
