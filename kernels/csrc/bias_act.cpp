#include <torch/extension.h>

#include "bias_act.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused bias + activation + gain + clamp (CUDA, forward).";
  m.def("bias_act", &bias_act_cuda, "clamp(act(x + b) * gain); clamp < 0 means none", py::arg("x"), py::arg("b"),
        py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
}
