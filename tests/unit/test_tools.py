"""The benchmark tools' own logic: what they parse and how they refuse to run."""

import subprocess
import sys
from pathlib import Path

import torch

from workflow_scripts.tools import bench_per_pair, gpu_check

REPO = Path(__file__).resolve().parents[2]


def test_result_fields_reads_the_last_result_line():
    output = "RESULT a=1\nnoise\nRESULT mp_vs_relu=8.75 ihtp_speedup=6.1\ntrailing\n"
    assert gpu_check.result_fields(output) == {"mp_vs_relu": "8.75", "ihtp_speedup": "6.1"}
    assert gpu_check.result_fields("no result here") == {}


def test_gpu_check_refuses_without_cuda_and_says_what_to_do():
    if torch.cuda.is_available():  # the check itself runs there; nothing to refuse
        return
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.tools.gpu_check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no CUDA device" in result.stdout and "envs/install.sh" in result.stdout
    assert not (REPO / "gpu-check").exists()  # refused before writing anything


def test_job_options_come_from_the_dry_run_command_line():
    line = (
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.evaluate --eval-type core --variant base '
        "--sae-dir results/saes/base --threads 1 --settings '{\"a\": [1, 2]}' "
        "--artifacts-root results/artifacts --output o.json > logs/x.log 2>&1"
    )
    argv = bench_per_pair.parse_job_line(line)
    assert bench_per_pair.option(argv, "--settings") == '{"a": [1, 2]}'
    assert bench_per_pair.option(argv, "--sae-dir") == "results/saes/base"
    assert argv[-1] == "o.json"  # the log redirection is not part of the command
