#!/usr/bin/python3
"""Fine-tune the demo CNN after tdecomp-tool has compressed it: an example to copy.

Two ways, both on scikit-learn's digits (tests/data/README.md) with Debian's python3-torch,
python3-sklearn, python3-h5py, python3-numpy, CPU only, a few seconds:

Decomposed weights (default). `tdecomp-tool decompose` rewrites each conv and dense layer as a
chain of smaller layers (Tucker-2, CP or SVD); demo_model.model_from_state_dict rebuilds those
chains as nn.Sequential modules, and every parameter of the smaller model is fine-tuned.

    /usr/bin/python3 tools/examples/finetune.py [--rank-ratio 0.5 | --energy 0.9 | ...]

LoRA adapters (--adapters). `tdecomp-tool adapters` splits each layer's weight W into a frozen
part and a low-rank adapter, W = frozen + (alpha/r) * (B @ A).reshape(W.shape) (the
microsoft/loralib layout; for a conv (Cout, Cin/g, k, k), A is (r*k, Cin*k) and B (Cout/g*k, r*k)).
In `principal` mode B A is the rank-(r*k) truncated SVD of W and `frozen` the rest; in `residual`
mode `frozen` is the truncation and B A the best rank-(r*k) fit of what it leaves out. Each
adapted layer becomes a LoRA module computing

    output = decay * (W_frozen x) + (alpha/r) * (B A x) + bias,

and training fades the frozen path out: decay falls linearly from 1 to --decay-floor between
steps --fade-start and --fade-end. At inference (model.eval()) only the adapter path is used,
decay = 0, so the trained model needs no frozen weight at all. In principal mode the adapter-only
model at initialisation is exactly the rank-(r*k) truncation: this is compression through
adapters, and the fade lets the network drift from the full weight to the small one.

    /usr/bin/python3 tools/examples/finetune.py --adapters [--rank 8] [--mode principal] [--alpha A]

Trained in --adapters mode: lora_A and lora_B of every adapted layer, plus the 1-D parameters
(the biases, the BatchNorm scales and shifts; about 1 % of the model), which can follow the
adapters at no cost in size; --lora-only trains A and B alone. Frozen weights, and the weights of
layers the tool gave no adapter, are never trained. BatchNorm's running statistics are updated in
either mode (training mode), so that they describe the network being trained. Where r*k exceeds
a layer's rank (or the residual is zero), the tool itself gives the extra rows of A loralib's
random initialisation with B's matching column zero, so every adapter pair can train.

--model is a torch-layout file of the demo architecture (tools/examples/demo_model.py).

Output (stdout; with --json one JSON object instead, and the progress lines go to stderr):

    accuracy before compression: 0.9867
    accuracy after compression: ...      (decomposed model; --adapters: adapters alone at init)
    accuracy after fine-tuning: ...      (--adapters: adapters alone after training)
    parameters before compression: 93450
    parameters after compression: ...    (the model used at inference)

Exit status 0 on success, 1 when the tool fails or an input is wrong, 2 on a usage error.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import demo_model  # noqa: E402
from save_h5 import load_state_dict_h5  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "tests", "data", "demo.torch.h5")
DEFAULT_SPEC = os.path.join(ROOT, "tests", "data", "demo.layer_spec.json")
DEFAULT_TOOL = os.path.join(ROOT, "build", "tools", "tdecomp-tool", "tdecomp-tool")
# The rank rules of `tdecomp-tool decompose`, passed through unchanged (exactly one is used).
RANK_RULES = (("--rank", int), ("--ranks", str), ("--rank-ratio", float), ("--energy", float),
              ("--vbmf", None), ("--target-params", float), ("--target-flops", float),
              ("--max-error", float))


class ToolError(Exception):
    pass


# ----------------------------------------------------------------------------- LoRA modules
class LoRALayer(nn.Module):
    """A conv or dense layer held as frozen weight + adapter. State-dict keys are those of the
    tool's output: `weight` (frozen, a buffer, never trained), `lora_A`, `lora_B`, `bias`.
    `decay` scales the frozen path while training; in eval mode `inference_decay` does, 0: the
    frozen path is dropped (1 gives back the original layer in principal mode, a check)."""

    def __init__(self, frozen, lora_a, lora_b, bias, scaling):
        super().__init__()
        self.register_buffer("weight", frozen.clone())
        self.lora_A = nn.Parameter(lora_a.clone())
        self.lora_B = nn.Parameter(lora_b.clone())
        self.bias = None if bias is None else nn.Parameter(bias.clone())
        self.scaling = scaling
        self.decay = 1.0
        self.inference_decay = 0.0

    def effective_weight(self):
        """decay * frozen + (alpha/r) B A, as one kernel: one conv or matmul instead of two."""
        delta = (self.lora_B @ self.lora_A).view(self.weight.shape) * self.scaling
        decay = self.decay if self.training else self.inference_decay
        return delta if decay == 0.0 else decay * self.weight + delta


class LoRAConv2d(LoRALayer):
    def __init__(self, conv, frozen, lora_a, lora_b, bias, scaling):
        super().__init__(frozen, lora_a, lora_b, bias, scaling)
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups

    def forward(self, x):
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class LoRALinear(LoRALayer):
    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


def lora_model_from_state_dict(sd, scaling):
    """A DemoNet whose layers with `<name>.lora_A` in `sd` are LoRA modules; conv geometry
    (stride, padding, dilation, groups) comes from the demo model's own modules."""
    model = demo_model.build_model()
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, (nn.Conv2d, nn.Linear)) or f"{name}.lora_A" not in sd:
            continue
        w, a, b = sd[f"{name}.weight"], sd[f"{name}.lora_A"], sd[f"{name}.lora_B"]
        bias = sd.get(f"{name}.bias")
        if w.shape != mod.weight.shape or b.shape[1] != a.shape[0] or \
                b.shape[0] * a.shape[1] != w.numel():
            raise ToolError(f"{name}: weight {tuple(w.shape)}, lora_A {tuple(a.shape)}, "
                            f"lora_B {tuple(b.shape)} do not fit {tuple(mod.weight.shape)}")
        if isinstance(mod, nn.Conv2d):
            new = LoRAConv2d(mod, w, a, b, bias, scaling)
        else:
            new = LoRALinear(w, a, b, bias, scaling)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new)
    model.load_state_dict(sd, strict=True)
    return model.float()


def lora_modules(model):
    return [m for m in model.modules() if isinstance(m, LoRALayer)]


def fade(step, start, end, floor):
    """The frozen path's weight at `step`: 1 until `start`, linear to `floor` at `end`."""
    if step <= start:
        return 1.0
    if step >= end:
        return floor
    return 1.0 - (1.0 - floor) * (step - start) / (end - start)


def inference_parameters(model):
    """Parameters the model uses in eval mode (frozen LoRA weights are buffers: not counted)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------- the tool
def run_tool(tool, args, log):
    cmd = [tool] + args
    log("$ " + " ".join(cmd))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise ToolError(f"cannot run {tool}: {e.strerror} (build it with `ninja -C build`, "
                        f"or pass --tool / set TDECOMP_TOOL)")
    if r.returncode != 0:
        msg = r.stderr.strip() or r.stdout.strip() or "(no message)"
        raise ToolError(f"`tdecomp-tool {args[0]}` failed with exit status {r.returncode}:\n{msg}")


# --------------------------------------------------------------------------------- training
def train(model, params, data, epochs, lr, batch, seed, log, on_step=None):
    """AdamW (no weight decay) with a cosine learning rate over all steps, batches drawn from
    a seeded permutation. `on_step(step)` runs before each optimiser step (the fade). The test
    accuracy logged after each epoch is the eval-mode model's (--adapters: adapters alone)."""
    x_tr, x_te, y_tr, y_te = data
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(y_tr) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y_tr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch):
            if on_step:
                on_step(step)
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            step += 1
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(y_tr):.4f}, "
            f"test accuracy {demo_model.accuracy(model, x_te, y_te):.4f}")


def total_steps(epochs, n_train, batch):
    return epochs * math.ceil(n_train / batch)


# ------------------------------------------------------------------------------------ modes
def run_decomposed(a, tmp, spec, data, log):
    out = os.path.join(tmp, "decomposed.h5")
    args = ["decompose", a.model, "-o", out, "--layer-spec", a.layer_spec]
    if a.method:
        args += ["--method", a.method]
    if a.calibration:
        args += ["--calibration", a.calibration]
    rule = [(opt, getattr(a, opt[2:].replace("-", "_"))) for opt, _ in RANK_RULES]
    rule = [(opt, v) for opt, v in rule if v not in (None, False)] or [("--rank-ratio", 0.5)]
    rule = [x for opt, v in rule for x in ([opt] if v is True else [opt, str(v)])]
    run_tool(a.tool, args + rule, log)
    model = demo_model.model_from_state_dict(load_state_dict_h5(out), spec)
    res = {"mode": "decomposed", "rank_rule": " ".join(rule)}
    res["accuracy_after_compression"] = demo_model.accuracy(model, data[1], data[3])
    res["parameters_after_compression"] = inference_parameters(model)
    torch.manual_seed(a.seed)
    train(model, list(model.parameters()), data, a.epochs, a.lr or 1e-3, a.batch, a.seed, log)
    res["accuracy_after_fine_tuning"] = demo_model.accuracy(model, data[1], data[3])
    return res


def run_adapters(a, tmp, data, log):
    out = os.path.join(tmp, "adapters.h5")
    rank = a.rank if a.rank is not None else 8
    alpha = a.alpha if a.alpha is not None else float(rank)
    run_tool(a.tool, ["adapters", a.model, "--rank", str(rank), "--mode", a.mode,
                      "--alpha", repr(alpha), "-o", out, "--layer-spec", a.layer_spec], log)
    with h5py.File(out, "r") as f:
        r = int(f.attrs["tdecomp_adapters_rank"])
        alpha = float(f.attrs["tdecomp_adapters_alpha"])
        mode = f.attrs["tdecomp_adapters_mode"]
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    model = lora_model_from_state_dict(load_state_dict_h5(out), alpha / r)
    adapted = [n for n, m in model.named_modules() if isinstance(m, LoRALayer)]
    if not adapted:
        raise ToolError(f"{out}: no layer has lora_A/lora_B")
    torch.manual_seed(a.seed)
    lora = [p for n, p in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]
    others = [p for n, p in model.named_parameters()
              if p.ndim == 1 and not n.endswith((".lora_A", ".lora_B"))]
    # Unadapted layers' weights (2-D/4-D parameters) are never trained.
    for p in model.parameters():
        p.requires_grad_(False)
    params = lora + ([] if a.lora_only else others)
    for p in params:
        p.requires_grad_(True)

    steps = total_steps(a.epochs, len(data[2]), a.batch)
    if a.fade_end is not None:
        end = a.fade_end
        start = a.fade_start if a.fade_start is not None else min(round(0.1 * steps), end)
    else:
        start = a.fade_start if a.fade_start is not None else round(0.1 * steps)
        end = max(start, round(0.6 * steps))
    log(f"adapted layers: {', '.join(adapted)}; rank {r}, alpha {alpha:g}, mode {mode}; "
        f"decay 1 -> {a.decay_floor:g} over steps {start}..{end} of {steps}")

    def on_step(step):
        d = fade(step, start, end, a.decay_floor)
        for m in lora_modules(model):
            m.decay = d

    res = {"mode": "adapters", "adapter_mode": mode, "adapter_rank": r, "adapter_alpha": alpha,
           "adapted_layers": adapted, "fade_start": start, "fade_end": end,
           "decay_floor": a.decay_floor, "total_steps": steps}
    res["accuracy_after_compression"] = demo_model.accuracy(model, data[1], data[3])
    res["parameters_after_compression"] = inference_parameters(model)
    res["adapter_parameters"] = sum(p.numel() for p in lora)
    res["trained_parameters"] = sum(p.numel() for p in params)
    torch.manual_seed(a.seed)
    train(model, params, data, a.epochs, a.lr or 2e-3, a.batch, a.seed, log, on_step)
    res["accuracy_after_fine_tuning"] = demo_model.accuracy(model, data[1], data[3])
    return res


# -------------------------------------------------------------------------------------- main
def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Compress the demo CNN with tdecomp-tool and fine-tune it (decomposed "
                    "weights, or LoRA adapters with --adapters).",
        epilog="The module docstring (finetune.py's first lines) explains both modes.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="torch-layout .h5 of the demo architecture (default tests/data/demo.torch.h5)")
    p.add_argument("--layer-spec", default=DEFAULT_SPEC, help="layer spec JSON of that model")
    p.add_argument("--tool", default=os.environ.get("TDECOMP_TOOL") or DEFAULT_TOOL,
                   help="tdecomp-tool binary (default $TDECOMP_TOOL, else the build tree's)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    p.add_argument("--lr", type=float, help="AdamW learning rate, cosine to 0 "
                   "(default 1e-3 decomposed, 2e-3 adapters)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed and batch order")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g = p.add_argument_group("decompose (default mode)", "At most one rank rule, passed to "
                             "`tdecomp-tool decompose` unchanged (default --rank-ratio 0.5); "
                             "with --adapters, --rank is the adapter rank r (default 8).")
    g.add_argument("--method", help="passed to decompose --method")
    g.add_argument("--calibration", help="statistics file passed to decompose --calibration "
                   "(tools/examples/calibrate_demo.py writes the demo's)")
    rules = g.add_mutually_exclusive_group()
    for opt, typ in RANK_RULES:
        if typ is None:
            rules.add_argument(opt, action="store_true")
        else:
            rules.add_argument(opt, type=typ)
    g = p.add_argument_group("LoRA adapters")
    g.add_argument("--adapters", action="store_true", help="adapter mode")
    g.add_argument("--mode", choices=("principal", "residual"), help="default principal")
    g.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank, scaling 1)")
    g.add_argument("--fade-start", type=int, help="step at which decay starts falling "
                   "(default 10 %% of all steps)")
    g.add_argument("--fade-end", type=int, help="step at which decay reaches the floor "
                   "(default 60 %% of all steps)")
    g.add_argument("--decay-floor", type=float, help="default 0: the frozen path is gone "
                   "by the end of training, as at inference")
    g.add_argument("--lora-only", action="store_true",
                   help="train lora_A/lora_B only, not the biases and BatchNorm parameters")
    a = p.parse_args(argv)
    if a.adapters:
        used = [opt for opt, _ in RANK_RULES if opt != "--rank"
                and getattr(a, opt[2:].replace("-", "_")) not in (None, False)]
        if used or a.method:
            p.error(f"{', '.join(used + (['--method'] if a.method else []))}: "
                    f"decompose options, not valid with --adapters")
        if a.rank is not None and a.rank < 1:
            p.error("--rank must be at least 1")
        if (a.fade_start or 0) < 0 or (a.fade_end or 0) < 0 or \
                (a.fade_end is not None and (a.fade_start or 0) > a.fade_end):
            p.error("--fade-start and --fade-end: need 0 <= start <= end")
    else:
        used = [opt for opt in ("mode", "alpha", "fade_start", "fade_end", "decay_floor")
                if getattr(a, opt) is not None] + (["lora_only"] if a.lora_only else [])
        if used:
            p.error(", ".join("--" + u.replace("_", "-") for u in used) + ": adapter options, "
                    "valid only with --adapters")
    a.mode = a.mode or "principal"
    a.decay_floor = 0.0 if a.decay_floor is None else a.decay_floor
    if a.epochs < 0 or a.batch < 1:
        p.error("--epochs must be >= 0 and --batch >= 1")
    if not 0.0 <= a.decay_floor <= 1.0:
        p.error("--decay-floor must be in [0, 1]")
    return a


def main(argv):
    a = parse_args(argv)
    log_to = sys.stderr if a.json else sys.stdout

    def log(msg):
        print(msg, file=log_to, flush=True)

    for path in (a.model, a.layer_spec):
        if not os.path.isfile(path):
            print(f"finetune: {path}: no such file", file=sys.stderr)
            return 1
    t0 = time.monotonic()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    with open(a.layer_spec) as f:
        spec = json.load(f)
    data = demo_model.load_data()
    original = demo_model.model_from_state_dict(load_state_dict_h5(a.model), spec)
    res = {"accuracy_before_compression": demo_model.accuracy(original, data[1], data[3]),
           "parameters_before_compression": inference_parameters(original)}
    tmp = tempfile.mkdtemp(prefix="tdecomp-finetune-")
    try:
        res.update(run_adapters(a, tmp, data, log) if a.adapters
                   else run_decomposed(a, tmp, spec, data, log))
    except ToolError as e:
        print(f"finetune: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["epochs"] = a.epochs
    res["seconds"] = round(time.monotonic() - t0, 2)

    if a.json:
        print(json.dumps(res, sort_keys=True))
        return 0
    print(f"accuracy before compression: {res['accuracy_before_compression']:.4f}")
    print(f"accuracy after compression: {res['accuracy_after_compression']:.4f}")
    print(f"accuracy after fine-tuning: {res['accuracy_after_fine_tuning']:.4f}")
    print(f"parameters before compression: {res['parameters_before_compression']}")
    print(f"parameters after compression: {res['parameters_after_compression']}")
    if a.adapters:
        print(f"adapter parameters: {res['adapter_parameters']}")
        print(f"trained parameters: {res['trained_parameters']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
