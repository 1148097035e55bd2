"""One entry point per rule: what a job runs (`python -m workflow_scripts.steps.<step>`)."""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def exit_without_teardown(code: int | None) -> NoReturn:
    """End a job's process once its outputs are written, without CPython's teardown.

    After importing torch, TransformerLens and SAE Bench, tearing the interpreter down (freeing
    every module and object) takes ~1.8 s here, paid by every job and by nobody's benefit. The
    registered exit handlers still run (logging's flush, `weakref.finalize` callbacks such as the
    datasets library's temporary cache folders; `atexit._run_exitfuncs` is how CPython runs them
    at a normal exit), the standard streams are flushed, then the process exits with `code`.
    An exception escaping `main()` never gets here: it exits the normal way, with its traceback.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
