"""The forget corpus is checked up front for what SAE Bench reads: JSON lines with a `text`."""

import gzip
import json
import os

import pandas as pd
import pytest

from workflow_scripts.evals import unlearning


def config(path):
    return {"model": {"name": "gemma-2-2b-it"}, "unlearning": {"forget_corpus_path": str(path)}}


def test_json_lines_with_text_pass(tmp_path):
    corpus = tmp_path / "bio-forget-corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"title": "t", "text": "x" * 80}) + "\n" for _ in range(9))
    )
    assert unlearning.problems(config(corpus), {}) == []


def test_parquet_is_refused_with_the_command_that_converts_it(tmp_path):
    corpus = tmp_path / "bio-forget-corpus.parquet"
    pd.DataFrame({"title": ["t"], "text": ["x" * 80]}).to_parquet(corpus)
    [problem] = unlearning.problems(config(corpus), {})
    assert "config key 'unlearning.forget_corpus_path'" in problem
    assert "is a parquet file" in problem and "feature_activation.py:39-41" in problem
    # the command it gives works and yields a file the check accepts
    command = problem.split('python -c "', 1)[1].split('" and point', 1)[0]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(command, {})
    finally:
        os.chdir(cwd)
    assert unlearning.problems(config(tmp_path / "bio-forget-corpus.jsonl"), {}) == []


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"text": "fine"}\nnot json\n', "line 2 of"),
        ('{"title": "no text here"}\n', "has no string field 'text'"),
        ('["text"]\n', "has no string field 'text'"),
        ("\n\n", "is empty"),
    ],
)
def test_lines_sae_bench_cannot_read_are_refused_naming_the_line(tmp_path, content, expected):
    corpus = tmp_path / "bio-forget-corpus.jsonl"
    corpus.write_text(content)
    [problem] = unlearning.problems(config(corpus), {})
    assert expected in problem and "config key 'unlearning.forget_corpus_path'" in problem


def test_gzip_is_refused(tmp_path):
    corpus = tmp_path / "bio-forget-corpus.jsonl.gz"
    corpus.write_bytes(gzip.compress(b'{"text": "x"}\n'))
    [problem] = unlearning.problems(config(corpus), {})
    assert "gzip-compressed" in problem
