#!/usr/bin/python3
"""Calibration statistics of the shipped demo model on its own training split (scikit-learn's
digits, the 1,347 training images), with tdecomp.torch.calibrate: the file that
`tdecomp-tool decompose --calibration` reads (docs/formats.md section 3).

    /usr/bin/python3 tools/examples/calibrate_demo.py tests/data/demo.torch.h5 STATS.h5
"""
import os
import sys

sys.dont_write_bytecode = True
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "python"))
from demo_model import load_data, model_from_state_dict  # noqa: E402
from save_h5 import load_state_dict_h5  # noqa: E402
from tdecomp.torch import calibrate  # noqa: E402


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip())
        return 2
    model = model_from_state_dict(load_state_dict_h5(argv[0])).eval()
    x_tr = load_data()[0]
    n = calibrate(model, (x_tr[i:i + 128] for i in range(0, len(x_tr), 128)), argv[1],
                  provenance="tools/examples/calibrate_demo.py: digits training split")
    print(f"{argv[1]}: statistics of {n} training images")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
