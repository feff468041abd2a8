from .. import __version__

PRODUCER = f"tdecomp.torch {__version__}"
