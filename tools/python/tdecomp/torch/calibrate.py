"""calibrate(): second moments of every Conv2d's and Linear's input and output over a data set,
the statistics file `tdecomp-tool decompose --calibration` reads (docs/formats.md section 3)."""
import h5py
import torch
import torch.nn.functional as F

from . import _files
from ._version import PRODUCER
from .export import decomposable_modules, _run

CALIBRATION_VERSION = 1
# patch_cov (the exact metric of a k x k conv's output error) is written when Cin kh kw is at most
# this: (Cin kh kw)^2 float64 per layer, 32 MB at the default.
PATCH_MAX = 2048


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


def _patches(x, module):
    """The im2col patches a Conv2d multiplies, (N L, Cin kh kw) in index order (c, i, j), its
    padding (any mode) included."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    pad = module._reversed_padding_repeated_twice    # (left, right, top, bottom), any padding
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    if any(pad):
        x = F.pad(x, pad, mode=mode)
    p = F.unfold(x, module.kernel_size, dilation=module.dilation, stride=module.stride)
    return p.permute(0, 2, 1).reshape(-1, p.shape[1])


def _wants_patches(module, kind, patch_max):
    if kind != "conv2d" or module.groups != 1:
        return False
    kh, kw = module.kernel_size
    return kh * kw > 1 and module.in_channels * kh * kw <= patch_max


class _Moments:
    """Float64 sums of x x^T, y y^T (and the patches' p p^T) with their vector counts, per layer."""

    def __init__(self):
        self.in_sum = self.out_sum = self.patch_sum = None
        self.count = self.out_count = 0

    def add_patches(self, p):
        p = p.detach().double()
        sp = p.T @ p
        self.patch_sum = sp if self.patch_sum is None else self.patch_sum + sp
        self.patch_count = getattr(self, "patch_count", 0) + p.shape[0]

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


def collect(model, batches, patch_max=PATCH_MAX):
    """(name -> _Moments for every layer that ran, samples, batches seen)."""
    stats, handles = {}, []
    for name, m, kind in decomposable_modules(model):
        def hook(module, inputs, output, name=name, kind=kind):
            if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            x = _vectors(inputs[0], kind)
            y = _vectors(_without_bias(output, module, kind), kind)
            st = stats.setdefault(name, _Moments())
            st.add(x, y)
            if _wants_patches(module, kind, patch_max):
                st.add_patches(_patches(inputs[0].detach(), module))
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


def calibrate(model, batches, path, provenance=None, patch_max=PATCH_MAX):
    """Run model (in eval mode, without gradients) over batches (an iterable of input tensors or
    of (input, target) tuples, e.g. a DataLoader) and write the statistics file at path: per
    Conv2d / Linear, input_cov = E[x x^T] and output_cov = E[y y^T] (y without the bias) in
    float64, with their counts; for k x k convs with Cin kh kw <= patch_max (0: never) also
    patch_cov = E[p p^T] of the im2col patches, padding included, which makes the reported output
    error exact. Returns the number of samples seen."""
    stats, samples, nbatches = collect(model, batches, patch_max)
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
                if s.patch_sum is not None:
                    g.create_dataset("patch_cov", data=(s.patch_sum / s.patch_count).cpu().numpy())
                    g.attrs["patch_count"] = s.patch_count
                g.attrs["count"] = s.count
                g.attrs["output_count"] = s.out_count
    _files._replace_atomically(path, write)
    return samples
