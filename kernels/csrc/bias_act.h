#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

// clamp(act(x + b) * gain) with b broadcast along `dim`; clamp < 0 means none. b has x's dtype.
at::Tensor bias_act_cuda(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim,
                         const std::string& act, double alpha, double gain, double clamp);
