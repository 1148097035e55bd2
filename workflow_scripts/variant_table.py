"""The one place that turns a validated config into the list of SAE variants.

Every rule, the aggregation and the plots ask this table for ids, families and parameters;
nothing re-derives them from strings elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workflow_scripts import saelens_releases
from workflow_scripts.settings import ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")

# family -> (config key of its parameter list, parameter name, id prefix)
DERIVED_FAMILIES = {
    "ihtp": ("k_values", "k"),
    "mpsae": ("s_values", "s"),
    "mpsae_nonneg": ("s_values", "s"),
}


@dataclass(frozen=True)
class Variant:
    id: str
    family: str  # baseline | ihtp | mpsae | mpsae_nonneg | comparison
    param_name: str | None = None
    param: int | None = None
    source: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def derived(self) -> bool:
        return self.family in DERIVED_FAMILIES


def comparison_id(release: str, sae_id: str) -> str:
    """Id of a published SAE: its release and SAE id, which are unique together."""
    return f"{release}__{sae_id}".replace("/", "_")


def build_variant_table(config: dict) -> list[Variant]:
    """Variants in a stable order: baseline, derived families, comparison SAEs."""
    variants = [Variant("baseline", "baseline", source=dict(config["baseline_sae"]))]
    for family, (list_key, param_name) in DERIVED_FAMILIES.items():
        section = config["sae_variants"][family]
        if not section["enabled"]:
            continue
        for value in section[list_key]:
            variants.append(Variant(f"{family}_{param_name}{value}", family, param_name, value))

    comparison = config["comparison_saes"]
    if comparison["enabled"]:
        try:
            matched = saelens_releases.resolve(
                comparison["sae_regex_pattern"], comparison["sae_block_pattern"]
            )
        except Exception as error:  # a bad regex is a config error, not a crash
            raise ConfigError(f"config key 'comparison_saes': {error}") from None
        if not matched:
            raise ConfigError(
                "config key 'comparison_saes': no SAE Lens release matches "
                f"sae_regex_pattern={comparison['sae_regex_pattern']!r} with "
                f"sae_block_pattern={comparison['sae_block_pattern']!r}"
            )
        for sae in matched:
            variants.append(
                Variant(comparison_id(sae.release, sae.sae_id), "comparison", source=sae.__dict__)
            )

    seen = set()
    for variant in variants:
        if not ID_PATTERN.match(variant.id):
            raise ConfigError(f"variant id {variant.id!r} must match {ID_PATTERN.pattern}")
        if variant.id in seen:
            raise ConfigError(f"config key 'sae_variants': duplicate variant id {variant.id!r}")
        seen.add(variant.id)
    return variants


def known_sae_widths(config: dict, variants: dict) -> dict[str, int]:
    """Widths of the SAEs that can be known without network when the DAG is built: SAE folders
    already written, and the demo's manifest for the baseline and its derived variants."""
    import json
    from pathlib import Path

    widths = {}
    demo_manifest = Path(config["demo"]["dir"]) / "manifest.json"
    if config["demo"]["build"] and demo_manifest.is_file():
        d_sae = json.loads(demo_manifest.read_text()).get("d_sae")
        widths.update(
            {v.id: d_sae for v in variants.values() if d_sae and v.family != "comparison"}
        )
    for variant_id in variants:
        sae_config = Path(config["output_dir"]) / "saes" / variant_id / "config.json"
        if sae_config.is_file():
            widths[variant_id] = json.loads(sae_config.read_text())["d_sae"]
    return widths
