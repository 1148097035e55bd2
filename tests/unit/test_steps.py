"""A step's process ends with its exit code, its output flushed and its exit handlers run, but
without the interpreter's teardown."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_exit_without_teardown_keeps_code_output_and_exit_handlers(tmp_path):
    marker = tmp_path / "handler-ran"
    code = (
        "import atexit, pathlib\n"
        "from workflow_scripts.steps import exit_without_teardown\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "print('written before exit', end='')\n"  # no newline: only a flush gets it out
        "exit_without_teardown(3)\n"
        "print('never')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout == "written before exit"
    assert marker.read_text() == "yes"
