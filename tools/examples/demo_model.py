#!/usr/bin/python3
"""The demo CNN shipped in tests/data (scikit-learn's 8x8 digits, 10 classes), shared by
tools/train_demo.py, tools/examples/layer_spec.py and tests.

As a script it reports the test accuracy of torch-style .h5 files of this model, original or
decomposed by tdecomp-tool (decomposed layers are rebuilt as the nn.Sequential chains of
docs/cli.md 'Outputs', with the layer spec's stride/padding/dilation):

    /usr/bin/python3 tools/examples/demo_model.py tests/data/demo.torch.h5 [OTHER.h5 ...]
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from save_h5 import load_state_dict_h5  # noqa: E402

INPUT_SHAPE = (1, 8, 8)      # C, H, W
NUM_CLASSES = 10
SPLIT_SEED = 0               # sklearn train_test_split random_state
TEST_SIZE = 0.25
# Keras's BatchNormalization default epsilon, so that a Keras model built with default
# arguments computes the same function from demo.keras.h5.
BN_EPS = 1e-3


class DemoNet(nn.Module):
    """features: 4 convs (the third with stride 2), BatchNorm after the two bias-free ones;
    classifier: flatten (NCHW order) and two dense layers."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),                         # features.0  8x8
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),            # features.2  8x8
            nn.BatchNorm2d(32, eps=BN_EPS),                         # features.3
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),  # features.5  8x8 -> 4x4
            nn.BatchNorm2d(64, eps=BN_EPS),                         # features.6
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),                        # features.8  4x4
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 32),                              # classifier.1
            nn.ReLU(),
            nn.Linear(32, NUM_CLASSES),                             # classifier.3
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def build_model():
    return DemoNet()


# The equivalent Keras 2 Sequential model, in model.layers order (= layer_names of
# demo.keras.h5). Each entry: (keras name, class, torch module or None, config).
# PyTorch's symmetric padding 1 on the stride-2 conv is not Keras's padding="same" (which pads
# 0 top/left and 1 bottom/right there), hence the explicit ZeroPadding2D + "valid" conv.
KERAS_LAYERS = [
    ("conv2d", "Conv2D", "features.0",
     dict(filters=16, kernel_size=3, strides=1, padding="same", use_bias=True, activation="relu")),
    ("conv2d_1", "Conv2D", "features.2",
     dict(filters=32, kernel_size=3, strides=1, padding="same", use_bias=False, activation=None)),
    ("batch_normalization", "BatchNormalization", "features.3", dict(epsilon=BN_EPS)),
    ("re_lu", "ReLU", None, {}),
    ("zero_padding2d", "ZeroPadding2D", None, dict(padding=1)),
    ("conv2d_2", "Conv2D", "features.5",
     dict(filters=64, kernel_size=3, strides=2, padding="valid", use_bias=False, activation=None)),
    ("batch_normalization_1", "BatchNormalization", "features.6", dict(epsilon=BN_EPS)),
    ("re_lu_1", "ReLU", None, {}),
    ("conv2d_3", "Conv2D", "features.8",
     dict(filters=64, kernel_size=3, strides=1, padding="same", use_bias=True, activation="relu")),
    ("flatten", "Flatten", None, {}),
    ("dense", "Dense", "classifier.1", dict(units=32, activation="relu")),
    ("dense_1", "Dense", "classifier.3", dict(units=NUM_CLASSES, activation=None)),
]

KERAS_SOURCE = """\
from tensorflow import keras
from tensorflow.keras import layers
model = keras.Sequential([
    keras.Input((8, 8, 1)),
    layers.Conv2D(16, 3, padding="same", activation="relu"),
    layers.Conv2D(32, 3, padding="same", use_bias=False),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.ZeroPadding2D(1),
    layers.Conv2D(64, 3, strides=2, use_bias=False),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.Conv2D(64, 3, padding="same", activation="relu"),
    layers.Flatten(),
    layers.Dense(32, activation="relu"),
    layers.Dense(10),
])
model.load_weights("tests/data/demo.keras.h5")   # input: NHWC, pixels / 16
"""


def load_data():
    """Digits split 75/25 with random_state 0; images as float32 (N, 1, 8, 8) scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED)
    return (torch.from_numpy(x_tr), torch.from_numpy(x_te),
            torch.from_numpy(y_tr), torch.from_numpy(y_te))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _chain(name, conv, sd, spec):
    """The nn.Sequential a decomposed conv `name` was written as (docs/cli.md 'Outputs')."""
    def w(i):
        return sd[f"{name}.{i}.weight"]

    def has_bias(i):
        return f"{name}.{i}.bias" in sd
    n = 0
    while f"{name}.{n}.weight" in sd:
        n += 1
    s = spec.get(name, {})
    stride = _pair(s.get("stride", conv.stride))
    dil = _pair(s.get("dilation", conv.dilation))
    pad = s.get("padding", [conv.padding[0], conv.padding[0], conv.padding[1], conv.padding[1]])
    if isinstance(pad, str) or pad[0] != pad[1] or pad[2] != pad[3]:
        raise ValueError(f"{name}: only symmetric numeric padding is rebuilt here")
    ph, pw = pad[0], pad[2]
    if n == 3:      # Tucker-2
        r_in, cin = w(0).shape[:2]
        r_out, _, kh, kw = w(1).shape
        cout = w(2).shape[0]
        return nn.Sequential(
            nn.Conv2d(cin, r_in, 1, bias=has_bias(0)),
            nn.Conv2d(r_in, r_out, (kh, kw), stride=stride, padding=(ph, pw), dilation=dil,
                      bias=has_bias(1)),
            nn.Conv2d(r_out, cout, 1, bias=has_bias(2)))
    if n == 4:      # CP: 1x1, depthwise (kh,1), depthwise (1,kw), 1x1
        r, cin = w(0).shape[:2]
        kh, kw = w(1).shape[2], w(2).shape[3]
        cout = w(3).shape[0]
        return nn.Sequential(
            nn.Conv2d(cin, r, 1, bias=has_bias(0)),
            nn.Conv2d(r, r, (kh, 1), stride=(stride[0], 1), padding=(ph, 0),
                      dilation=(dil[0], 1), groups=r, bias=has_bias(1)),
            nn.Conv2d(r, r, (1, kw), stride=(1, stride[1]), padding=(0, pw),
                      dilation=(1, dil[1]), groups=r, bias=has_bias(2)),
            nn.Conv2d(r, cout, 1, bias=has_bias(3)))
    if n == 2:      # SVD / grouped SVD (ALDS): groups k = Cin / (Cin/k)
        kj, cin_k, kh, kw = w(0).shape
        cin = conv.in_channels
        cout = w(1).shape[0]
        return nn.Sequential(
            nn.Conv2d(cin, kj, (kh, kw), stride=stride, padding=(ph, pw), dilation=dil,
                      groups=cin // cin_k, bias=has_bias(0)),
            nn.Conv2d(kj, cout, 1, bias=has_bias(1)))
    raise ValueError(f"{name}: no weights for this layer in the state dict")


def model_from_state_dict(sd, spec=None):
    """A DemoNet holding `sd`; layers written as decomposed chains (keys `<name>.<i>.weight`)
    are replaced by the matching nn.Sequential before a strict load_state_dict."""
    spec = spec or {}
    model = build_model()
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, (nn.Conv2d, nn.Linear)) or f"{name}.weight" in sd:
            continue
        if isinstance(mod, nn.Linear):
            w0, w1 = sd[f"{name}.0.weight"], sd[f"{name}.1.weight"]
            new = nn.Sequential(nn.Linear(w0.shape[1], w0.shape[0], bias=f"{name}.0.bias" in sd),
                                nn.Linear(w1.shape[1], w1.shape[0], bias=f"{name}.1.bias" in sd))
        else:
            new = _chain(name, mod, sd, spec)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()}, strict=True)
    return model.float()


def main(argv):
    import json
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    here = os.path.dirname(os.path.abspath(__file__))
    spec_path = os.path.join(here, "..", "..", "tests", "data", "demo.layer_spec.json")
    with open(spec_path) as f:
        spec = json.load(f)
    _, x_te, _, y_te = load_data()
    for path in argv:
        model = model_from_state_dict(load_state_dict_h5(path), spec)
        params = sum(p.numel() for p in model.parameters())
        print(f"{path}: test accuracy {accuracy(model, x_te, y_te):.4f} "
              f"({len(y_te)} images, {params} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
