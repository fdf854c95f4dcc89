// Fused bias + activation + gain + clamp, elementwise (kernel code only, no ATen).
#pragma once

#include <cmath>
#include <cstdint>

namespace stylecore {

enum class Activation { Linear, Relu, Lrelu, Tanh, Sigmoid, Elu, Selu, Softplus, Swish };

// The torch functions the reference uses: F.relu, F.leaky_relu(alpha), tanh, sigmoid, F.elu (alpha 1),
// F.selu, F.softplus (beta 1, threshold 20), sigmoid(x) * x.
__device__ inline float activate(float v, Activation act, float alpha) {
  constexpr float kSeluScale = 1.0507009873554804934f, kSeluAlpha = 1.6732632423543772848f;
  switch (act) {
    case Activation::Linear: return v;
    case Activation::Relu: return v < 0.f ? 0.f : v;  // NaN stays NaN, as in torch
    case Activation::Lrelu: return v > 0.f ? v : v * alpha;
    case Activation::Tanh: return tanhf(v);
    case Activation::Sigmoid: return 1.f / (1.f + expf(-v));
    case Activation::Elu: return v > 0.f ? v : expm1f(v);
    case Activation::Selu: return kSeluScale * (v > 0.f ? v : kSeluAlpha * expm1f(v));
    case Activation::Softplus: return v > 20.f ? v : log1pf(expf(v));
    case Activation::Swish: return v / (1.f + expf(-v));
  }
  return v;
}

struct BiasActParams {
  int64_t n;         // elements of x
  int64_t inner;     // elements after the bias dimension (x is contiguous)
  int64_t channels;  // size of the bias dimension
  Activation act;
  float alpha, gain;
  float clamp;  // negative means none
};

template <typename scalar_t>
__global__ void bias_act_kernel(scalar_t* out, const scalar_t* x, const scalar_t* b, BiasActParams p) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    float v = static_cast<float>(x[i]);
    if (b != nullptr) v += static_cast<float>(b[(i / p.inner) % p.channels]);
    v = activate(v, p.act, p.alpha) * p.gain;
    if (p.clamp >= 0.f) v = v < -p.clamp ? -p.clamp : (v > p.clamp ? p.clamp : v);  // NaN stays NaN
    out[i] = static_cast<scalar_t>(v);
  }
}

}  // namespace stylecore
