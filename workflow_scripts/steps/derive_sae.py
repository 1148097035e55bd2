"""Derive one variant's SAE folder from its baseline's (rule `derive_sae`): the baseline's
dictionary with another encoder (IHTP, MPSAE or a family from the config; docs/variants.md).

Usage: python -m workflow_scripts.steps.derive_sae --variant '<variant-table row JSON>' \
           --base results/saes/baseline --output results/saes/ihtp_k5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workflow_scripts.plan.families import FamilyError
from workflow_scripts.saes import loading, sae_folder
from workflow_scripts.saes.derive import derive_variant
from workflow_scripts.saes.family_classes import check_contract, load_class
from workflow_scripts.steps import exit_without_teardown


def derive(variant: dict, base: Path, output: Path):
    """Write the variant's folder; FamilyError / ValueError naming the config key."""
    family, source = variant["family"], variant.get("source", {})
    key = source.get("config_key", f"encoder_families.{family}")
    cls = load_class(source["class"], key)
    check_contract(cls, variant["param_name"], key)
    base_sae = loading.load_dictionary(base)
    if variant["param_name"] == "k" and variant["param"] > base_sae.cfg.d_sae:
        raise ValueError(
            f"config key '{source.get('values_key', key)}': k={variant['param']} exceeds "
            f"the width {base_sae.cfg.d_sae} of the baseline {base}"
        )
    sae = derive_variant(family, variant["param"], base_sae, cls=cls)
    metadata = sae_folder.variant_metadata(
        variant, derived_from=str(base), **{"class": source["class"]}
    )
    sae_folder.save_sae(sae, output, metadata=metadata)
    return sae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="JSON of the variant-table row")
    parser.add_argument("--base", required=True, type=Path, help="the baseline's SAE folder")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        sae = derive(json.loads(args.variant), args.base, args.output)
    except (FamilyError, FileNotFoundError, ValueError) as error:  # said
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    print(
        f"[derive_sae] wrote {args.output} ({sae.cfg.architecture}, d_in={sae.cfg.d_in}, "
        f"d_sae={sae.cfg.d_sae})"
    )
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())  # outputs are written; skip the ~1.8 s interpreter teardown
