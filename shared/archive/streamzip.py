"""stream-zip as the encoder uses it: the installed package's own code, compiled with postponed
evaluation of annotations (PEP 563), with member CRCs through :mod:`shared.archive.crc`.

Why: ``stream_zip()`` defines about twenty nested functions on every call, and Python evaluates
their annotations (``Generator[bytes, None, Tuple[int, int, int]]`` and the like, each a trip
through ``typing``'s cache) every time. The encoder calls it once per member, so for the small
members of a typical export that was 30 of its ~75 µs per member (measured on the bench machine:
73 → 42 µs for a 3.6 KB text member; a burst's export has about 35 members). stream-zip never
reads its annotations at run time, so compiling its unchanged source with the ``annotations``
future flag gives the same bytes (a unit test holds every member kind equal to the installed
module's output) at the lower cost.

The copy is a private module object: ``import stream_zip`` elsewhere still gets the installed
module untouched (its classes are not the copy's: nothing here catches or pickles them). Its
version is the installed package's, and the encoder fingerprint names it. Installed without its
source (bytecode only), the installed module itself is used: the same bytes, without the saving.
"""

from __future__ import annotations
import __future__

import importlib.util
import types
from pathlib import Path

from shared.archive import crc


def _load() -> types.ModuleType:
    spec = importlib.util.find_spec("stream_zip")
    if spec is None or spec.origin is None:
        raise ImportError("stream-zip is not installed")
    try:
        source = Path(spec.origin).read_text(encoding="utf-8") if spec.origin.endswith(".py") else None
    except OSError:
        source = None
    if source is None:
        import stream_zip as installed

        crc.install(installed)
        return installed
    module = types.ModuleType("stream_zip", "stream-zip, annotations not evaluated at definition time")
    module.__file__ = spec.origin
    code = compile(source, spec.origin, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102  (the installed package's own source file)
    crc.install(module)
    return module


module = _load()
stream_zip = module.stream_zip
ZIP_32 = module.ZIP_32
ZIP_64 = module.ZIP_64
