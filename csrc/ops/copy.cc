#include "ops/copy.h"

#include <cstring>
#include <memory>
#include <vector>

namespace minisinga {
namespace ops {

void CopyFromHost(const Tensor& t, const void* src, size_t bytes) {
  MS_CHECK(bytes == t.nbytes(), "copy_from_numpy: got " << bytes << " bytes for a tensor of shape "
                                                        << ShapeStr(t.shape()) << " and dtype "
                                                        << DTypeName(t.dtype()) << " ("
                                                        << t.nbytes() << " bytes)");
  TensorRef r = t.ref();
  Device* dev = t.device();
  if (dev->graph_enabled()) {
    // A recorded copy replays later: keep its own copy of the source.
    auto buf = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                   static_cast<const char*>(src) + bytes);
    dev->Exec([=](Context* ctx) {
      ctx->dev->CopyFromHost(r.mutable_data<char>(), buf->data(), bytes);
    }, {}, {t.block()}, "CopyFromHost");
  } else {
    dev->Exec([=](Context* ctx) { ctx->dev->CopyFromHost(r.mutable_data<char>(), src, bytes); },
              {}, {t.block()}, "CopyFromHost");
  }
}

void CopyToHost(const Tensor& t, void* dst, size_t bytes) {
  MS_CHECK(bytes == t.nbytes(), "to_numpy: buffer of " << bytes << " bytes for " << t.nbytes());
  Device* dev = t.device();
  MS_CHECK(!dev->graph_enabled(),
           "to_numpy: device " << dev->name()
                               << " is recording a graph, so this tensor has no value yet; read "
                                  "values outside train_one_batch, after the graph has run");
  dev->Sync();
  TensorRef r = t.ref();
  dev->CopyToHost(dst, r.data<char>(), bytes);
}

void Copy(const Tensor& dst, const Tensor& src) {
  MS_CHECK(dst.shape() == src.shape(), "copy_from: shapes differ, destination "
                                           << ShapeStr(dst.shape()) << " and source "
                                           << ShapeStr(src.shape()));
  MS_CHECK_TYPE(dst.dtype() == src.dtype(), "copy_from: dtypes differ, destination "
                                                << DTypeName(dst.dtype()) << " and source "
                                                << DTypeName(src.dtype())
                                                << "; use as_type to convert");
  TensorRef d = dst.ref(), s = src.ref();
  size_t n = src.nbytes();
  if (dst.device() == src.device()) {
    dst.device()->Exec(
        [=](Context* ctx) { ctx->dev->CopyOnDevice(d.mutable_data<char>(), s.data<char>(), n); },
        {src.block()}, {dst.block()}, "Copy");
    return;
  }
  // Across devices: stage through host memory (one side is always the host or a GPU).
  MS_CHECK(!dst.device()->graph_enabled() && !src.device()->graph_enabled(),
           "copy_from: copies between devices cannot be recorded in a graph");
  std::vector<char> host(n);
  src.device()->Sync();
  src.device()->CopyToHost(host.data(), s.data<char>(), n);
  dst.device()->CopyFromHost(d.mutable_data<char>(), host.data(), n);
}

Tensor Clone(const Tensor& t) {
  Tensor c(t.shape(), t.device(), t.dtype());
  Copy(c, t);
  return c;
}

Tensor ToDevice(const Tensor& t, Device* dev) {
  if (t.device() == dev) return t;
  Tensor c(t.shape(), dev, t.dtype());
  Copy(c, t);
  return c;
}

}  // namespace ops
}  // namespace minisinga
