"""Import one SAE into its folder `results/saes/{variant}/` (rule `import_sae`).

A baseline (or local reference SAE) comes from a dictionary_learning checkpoint (hub or local
folder) through SAE Bench's loaders and is saved with its weights; a comparison SAE from its SAE
Lens release, saved as a config-only folder that SAE Lens resolves (as SAE Bench's runner does).
Whatever the source, later steps read only the folder written here (saes/loading.py).

Usage: python -m workflow_scripts.steps.import_sae --variant '<variant-table row JSON>' \
           --model-name pythia-70m-deduped --output results/saes/baseline
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workflow_scripts import hub
from workflow_scripts.hub import NotCachedError
from workflow_scripts.plan.releases import model_matches
from workflow_scripts.plan.variants import baseline_hook
from workflow_scripts.saes import sae_folder, saelens
from workflow_scripts.saes.dictionary_learning import load_dictionary_learning_sae
from workflow_scripts.steps import exit_without_teardown


def build_published(variant: dict, model_name: str, output: Path) -> dict:
    """The folder (config only) of an SAE that SAE Lens loads: a release's SAE (comparison or
    baseline), loaded once as SAE Bench loads it, or a local SAE Lens folder (baseline). Refused
    when its model is not the configured one, or its hook point is not the baseline's
    `hook_layer` (baseline) or no baseline's (comparison)."""
    source = variant["source"]
    if source.get("release"):
        release, sae_id = source["release"], source["sae_id"]
        sae, _ = saelens.load(release, sae_id)
        where = (
            f"{variant['family']} {variant['id']} (SAE Lens release {release!r}, SAE {sae_id!r})"
        )
        sae_lens = {"release": release, "sae_id": sae_id}
    else:
        folder = str(Path(source["local_dir"]).resolve())
        sae = saelens.load_local(folder)
        where = f"{variant['family']} {variant['id']} (SAE Lens folder {folder})"
        sae_lens = {"path": folder}
    described = saelens.describe(sae)
    if not model_matches(described["model_name"], model_name):
        raise ValueError(
            f"{where}: trained on {described['model_name']!r}, but the config's model is "
            f"{model_name!r}"
        )
    layer = source.get("hook_layer")  # baselines and local reference SAEs say theirs
    if layer is not None:
        if described["hook_name"] != baseline_hook(source):
            raise ValueError(
                f"{where}: reads {described['hook_name']}, but its config entry says hook_layer "
                f"{layer}, i.e. {baseline_hook(source)} (baselines are residual-stream SAEs)"
            )
    hooks = source.get("baseline_hooks") or []
    if hooks and described["hook_name"] not in hooks:
        raise ValueError(
            f"{where}: reads {described['hook_name']}, which is no baseline's hook point "
            f"({', '.join(hooks)}); an SAE on another hook point answers another question"
        )
    sae_folder.save_published(
        output, described, sae_lens, metadata={"source": source, "variant": variant["id"]}
    )
    return described


def build(variant: dict, model_name: str, output: Path):
    """The folder of an imported SAE: a baseline or local reference SAE from a dictionary_learning
    checkpoint (hub or local folder) through SAE Bench's loaders, or an SAE that SAE Lens loads
    (a release's, or a local SAE Lens folder)."""
    family, source = variant["family"], variant.get("source", {})
    if family == "comparison" or source.get("release"):
        return build_published(variant, model_name, output)
    if family not in ("baseline", "reference"):  # a reference frontier's local SAE: as a baseline
        raise ValueError(f"variant {variant['id']} is derived: build it with steps.derive_sae")
    if source.get("local_dir") and saelens.is_saelens_folder(source["local_dir"]):
        return build_published(variant, model_name, output)
    if source.get("local_dir"):
        ae = Path(source["local_dir"]) / "ae.pt"
        config = ae.with_name("config.json")
    else:
        ae, config = hub.fetch_checkpoint(source["repo_id"], source["filename"])
    sae = load_dictionary_learning_sae(ae, model_name, source["hook_layer"], config)
    given = {k: v for k, v in source.items() if v is not None}
    sae_folder.save_sae(sae, output, metadata=sae_folder.variant_metadata(variant, source=given))
    return sae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="JSON of the variant-table row")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        sae = build(json.loads(args.variant), args.model_name, args.output)
    except (NotCachedError, FileNotFoundError, ValueError) as error:  # said (CheckpointError too)
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    if isinstance(sae, dict):  # a published SAE: its description
        print(
            f"[import_sae] wrote {args.output} (SAE Lens {sae['sae_lens_architecture']}, "
            f"d_in={sae['d_in']}, d_sae={sae['d_sae']}, {sae['hook_name']})"
        )
        return 0
    print(
        f"[import_sae] wrote {args.output} ({sae.cfg.architecture}, d_in={sae.cfg.d_in}, "
        f"d_sae={sae.cfg.d_sae})"
    )
    return 0


if __name__ == "__main__":
    exit_without_teardown(main())  # outputs are written; skip the ~1.8 s interpreter teardown
