"""The CUDA library (cuda/) from Python, by role:

* `library`: where the sources and the build are, the C API's declarations (the CDEF section of
  cuda/include/lenet5_gpu.h), loading, status codes;
* `nvcc`: the build, and the generated header of network sizes;
* `handle`: `GpuNetwork`, a handle holding the weights on one GPU;
* ``python -m lenet5_pynq.gpu header|build|check-header|info``: the command (`__main__`).
"""

from __future__ import annotations

from .handle import MODES, VARIANTS, GpuNetwork, pinned_bytes
from .library import (
    ENV_LIB,
    GPU_DIR,
    HEADER,
    LIB_NAME,
    GpuError,
    GpuLibraryMissing,
    build_dir,
    check_header,
    declared_functions,
    device_count,
    header_cdef,
    library_path,
    load_library,
)
from .nvcc import ARCHS, SHAPES_HEADER, SOURCES, build, nvcc_command, nvcc_path, shapes_header, write_shapes_header

__all__ = [
    "ARCHS",
    "ENV_LIB",
    "GPU_DIR",
    "HEADER",
    "LIB_NAME",
    "MODES",
    "SHAPES_HEADER",
    "SOURCES",
    "VARIANTS",
    "GpuError",
    "GpuLibraryMissing",
    "GpuNetwork",
    "build",
    "build_dir",
    "check_header",
    "declared_functions",
    "device_count",
    "header_cdef",
    "library_path",
    "load_library",
    "nvcc_command",
    "nvcc_path",
    "pinned_bytes",
    "shapes_header",
    "write_shapes_header",
]
