// The dtypes the kernels take: float32, float16, bfloat16, all computed in float32.
// float64 stays on the torch ops, which keep its precision.
#pragma once

#include <ATen/Dispatch.h>

#define STYLECORE_DISPATCH_FLOATS(TYPE, NAME, ...)                  \
  AT_DISPATCH_SWITCH(TYPE, NAME,                                    \
                     AT_DISPATCH_CASE(at::ScalarType::Float, __VA_ARGS__) \
                     AT_DISPATCH_CASE(at::ScalarType::Half, __VA_ARGS__)  \
                     AT_DISPATCH_CASE(at::ScalarType::BFloat16, __VA_ARGS__))
