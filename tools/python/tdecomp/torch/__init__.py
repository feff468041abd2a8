"""tdecomp.torch: compress PyTorch models with tdecomp-tool.

    from tdecomp.torch import compress
    small, report = compress(model, torch.randn(1, 3, 224, 224), rank_ratio=0.5, jobs=2)

export(model, example_input, path)   state dict + layer geometry, HDF5 or .safetensors
calibrate(model, batches, path)      activation statistics for decompose --calibration
load(model, path)                    rebuild the decomposed modules and load the weights
compress(model, example_input, **rule) -> (model, report)

File formats: docs/formats.md. Needs only torch, numpy and h5py; the tool is found through
tool=, $TDECOMP_TOOL or PATH.
"""
from .calibrate import calibrate
from .compress import compress, kernel_parameters
from .export import export
from .load import PaddedConv2d, load

__all__ = ["export", "calibrate", "load", "compress", "kernel_parameters", "PaddedConv2d"]
