"""tdecomp: Python helpers around the tdecomp-tool command (the C library's CLI).

Subpackages:
  tdecomp.torch  export / calibrate / load / compress for PyTorch models
"""
__version__ = "0.2.0"
