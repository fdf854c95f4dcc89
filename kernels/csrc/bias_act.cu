// Launcher of the bias_act kernel.
#include <utility>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "bias_act.h"
#include "bias_act_kernel.cuh"
#include "dispatch.h"
#include "launch.cuh"

using namespace stylecore;

static Activation parse_activation(const std::string& name) {
  static const std::pair<const char*, Activation> kNames[] = {
      {"linear", Activation::Linear}, {"relu", Activation::Relu},       {"lrelu", Activation::Lrelu},
      {"tanh", Activation::Tanh},     {"sigmoid", Activation::Sigmoid}, {"elu", Activation::Elu},
      {"selu", Activation::Selu},     {"softplus", Activation::Softplus}, {"swish", Activation::Swish}};
  for (const auto& entry : kNames)
    if (name == entry.first) return entry.second;
  TORCH_CHECK(false, "bias_act: unknown activation '", name, "'");
  return Activation::Linear;  // not reached
}

at::Tensor bias_act_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim,
                         const std::string& act, double alpha, double gain, double clamp) {
  TORCH_CHECK(x_in.is_cuda(), "bias_act: x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  BiasActParams p{};
  p.n = x.numel();
  p.inner = 1;
  p.channels = 1;
  p.act = parse_activation(act);
  p.alpha = static_cast<float>(alpha);
  p.gain = static_cast<float>(gain);
  p.clamp = static_cast<float>(clamp);

  at::Tensor b;
  if (b_in.has_value()) {
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim ", dim, " out of range for ", x.dim(), "-D x");
    TORCH_CHECK(b_in->dim() == 1 && b_in->size(0) == x.size(dim) && b_in->scalar_type() == x.scalar_type() &&
                    b_in->device() == x.device(),
                "bias_act: b must be a 1-D tensor of ", x.size(dim), " elements with x's dtype and device");
    b = b_in->contiguous();
    p.channels = x.size(dim);
    for (int64_t d = dim + 1; d < x.dim(); ++d) p.inner *= x.size(d);
  }

  at::Tensor out = at::empty_like(x);
  if (p.n == 0) return out;
  const int64_t blocks = std::min<int64_t>((p.n + kThreads - 1) / kThreads, 1 << 16);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  STYLECORE_DISPATCH_FLOATS(x.scalar_type(), "bias_act", [&] {
    const scalar_t* b_data = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
    bias_act_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                                               b_data, p);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}
