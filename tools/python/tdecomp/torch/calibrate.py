"""calibrate(): second moments of every Conv2d's and Linear's input and output over a data set,
the statistics file `tdecomp-tool decompose --calibration` reads (docs/formats.md section 3)."""
import h5py
import torch

from . import _files
from ._version import PRODUCER
from .export import decomposable_modules, _run

CALIBRATION_VERSION = 1


def _vectors(t, kind):
    """The rows whose second moment is taken: conv (N, C, H, W) -> (N H W, C) over every
    position of the map as given (the unpadded input); dense (..., F) -> (prod ..., F)."""
    if kind == "conv2d":
        if t.dim() == 3:           # an unbatched (C, H, W) call
            t = t.unsqueeze(0)
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    return t.reshape(-1, t.shape[-1])


def _without_bias(y, module, kind):
    b = module.bias
    if b is None:
        return y
    if kind == "conv2d":
        return y - b.reshape((-1, 1, 1))
    return y - b


class _Moments:
    """Float64 sums of x x^T and y y^T with their vector counts, per layer."""

    def __init__(self):
        self.in_sum = self.out_sum = None
        self.count = self.out_count = 0

    def add(self, x, y):
        x, y = x.detach().double(), y.detach().double()
        sx, sy = x.T @ x, y.T @ y
        self.in_sum = sx if self.in_sum is None else self.in_sum + sx
        self.out_sum = sy if self.out_sum is None else self.out_sum + sy
        self.count += x.shape[0]
        self.out_count += y.shape[0]


def _batch_input(batch):
    """A DataLoader's (input, target) tuple gives its input; a tensor is the input itself."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("calibrate: an empty batch tuple")
        return batch[0]
    return batch


def _batch_items(x):
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.dim() else 1
    if isinstance(x, (tuple, list)) and x:
        return _batch_items(x[0])
    if isinstance(x, dict) and x:
        return _batch_items(next(iter(x.values())))
    raise TypeError(f"calibrate: cannot count the samples of a {type(x).__name__} batch")


def _to_device(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def collect(model, batches):
    """(name -> _Moments for every layer that ran, samples, batches seen)."""
    stats, handles = {}, []
    for name, m, kind in decomposable_modules(model):
        def hook(module, inputs, output, name=name, kind=kind):
            if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            x = _vectors(inputs[0], kind)
            y = _vectors(_without_bias(output, module, kind), kind)
            stats.setdefault(name, _Moments()).add(x, y)
        handles.append(m.register_forward_hook(hook))
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    samples = nbatches = 0
    try:
        for batch in batches:
            x = _batch_input(batch)
            samples += _batch_items(x)
            nbatches += 1
            _run(model, _to_device(x, device))
    finally:
        for h in handles:
            h.remove()
    return stats, samples, nbatches


def calibrate(model, batches, path, provenance=None):
    """Run model (in eval mode, without gradients) over batches (an iterable of input tensors or
    of (input, target) tuples, e.g. a DataLoader) and write the statistics file at path: per
    Conv2d / Linear, input_cov = E[x x^T] and output_cov = E[y y^T] (y without the bias) in
    float64, with their counts. Returns the number of samples seen."""
    stats, samples, nbatches = collect(model, batches)
    if samples == 0:
        raise ValueError("calibrate: no batches")
    text = f"{PRODUCER}; model {type(model).__name__}; {nbatches} batches, {samples} samples"
    if provenance:
        text += f"; {provenance}"

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["tdecomp_calibration_version"] = CALIBRATION_VERSION
            f.attrs["samples"] = samples
            f.attrs.create("provenance", text, dtype=h5py.string_dtype("utf-8"))
            for name, s in stats.items():
                g = f.create_group(name)
                g.create_dataset("input_cov", data=(s.in_sum / s.count).cpu().numpy())
                g.create_dataset("output_cov", data=(s.out_sum / s.out_count).cpu().numpy())
                g.attrs["count"] = s.count
                g.attrs["output_count"] = s.out_count
    _files._replace_atomically(path, write)
    return samples
