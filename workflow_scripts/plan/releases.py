"""Resolve comparison-SAE patterns against SAE Lens's release directory, offline.

SAE Lens ships its release directory (`pretrained_saes.yaml`) inside the package, so the DAG can
be expanded without network. We read that file directly instead of importing
`sae_bench...get_saes_from_regex`, because importing sae_lens costs seconds on every
`snakemake -n`; the matching rule is the same as SAE Bench's (re.fullmatch on release and id).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

# Names by which SAE Lens's directory marks transcoders and cross-layer transcoders (its
# conversion functions mwhanna_transcoder, gemma_2_transcoder, mntss_clt_layer_transcoder; the
# Gemma Scope 2 releases `*-transcoders*`, whose conversion gemma_3 also loads SAEs): SAE Bench
# 0.6.0 has no transcoder code and would score one as an SAE of its input hook.
TRANSCODER = re.compile(r"transcoder|(^|[-_/.])clt([-_/.]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class PublishedSAE:
    release: str
    sae_id: str
    repo_id: str
    path: str  # folder or file inside repo_id
    conversion_func: str | None
    model: str

    @property
    def transcoder(self) -> bool:
        """Whether the directory marks it as a transcoder (see TRANSCODER)."""
        names = (self.release, self.sae_id, self.path, self.conversion_func or "")
        return any(TRANSCODER.search(str(name)) for name in names)  # a path may be an int


@functools.cache
def release_directory() -> dict:
    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("sae_lens is not installed: it is needed to resolve comparison_saes")
    path = Path(spec.submodule_search_locations[0]) / "pretrained_saes.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as handle:
        return yaml.load(handle, Loader=loader)


def resolve(sae_regex_pattern: str, sae_block_pattern: str) -> list[PublishedSAE]:
    """All (release, sae id) pairs whose names fully match both patterns, in directory order."""
    release_re = re.compile(sae_regex_pattern)
    block_re = re.compile(sae_block_pattern)
    found = []
    for release, entry in release_directory().items():
        if not release_re.fullmatch(release):
            continue
        for sae in entry.get("saes", []):
            if block_re.fullmatch(sae["id"]):
                found.append(
                    PublishedSAE(
                        release=release,
                        sae_id=sae["id"],
                        repo_id=entry["repo_id"],
                        path=sae["path"],
                        conversion_func=entry.get("conversion_func"),
                        model=entry.get("model", ""),
                    )
                )
    return found


def model_matches(release_model: str, model_name: str) -> bool:
    """Whether a release trained on `release_model` fits the configured TransformerLens model.

    Both sides lose an organisation prefix and case (SAE Lens writes `gemma-2-2b` or
    `google/gemma-2-2b`, TransformerLens accepts both)."""

    def bare(name: str) -> str:
        return name.split("/")[-1].lower()

    return bare(release_model) == bare(model_name)
