"""Build one variant's SAE folder (`results/saes/{variant}/`: safetensors + JSON config).

The baseline comes from a dictionary_learning checkpoint (hub or local folder) through SAE Bench's
loaders, derived variants from the baseline folder's decoder, comparison SAEs from their SAE Lens
release (a config-only folder: SAE Bench loads them itself). Whatever the source, the evaluation
step later reads only the folder written here.

Usage: python -m workflow_scripts.build_sae --variant ihtp_k5 --settings '<json>' \
           --output results/saes/ihtp_k5 [--base results/saes/baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def fetch_checkpoint(repo_id: str, filename: str) -> tuple[Path, Path]:
    """ae.pt and its sibling config.json through the HuggingFace cache.

    Raises NotCachedError naming the repo and file, with the prefetch hint, when the hub cannot
    be reached (no network, or HF_HUB_OFFLINE) and the cache lacks them, and FileNotFoundError
    naming them when the hub has no such repo or file; not huggingface_hub's bare traceback.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from workflow_scripts.hub_sources import PREFETCH_HINT, NotCachedError

    paths = []
    for name in (filename, str(Path(filename).with_name("config.json"))):
        try:
            paths.append(Path(hf_hub_download(repo_id=repo_id, filename=name)))
        except LocalEntryNotFoundError as error:  # offline (or unreachable) and not cached
            raise NotCachedError(
                f"cannot fetch {repo_id}/{name}: the HuggingFace hub is not reachable from here "
                f"and the cache ({os.environ.get('HF_HOME', 'HF_HOME unset')}) lacks it "
                f"({type(error).__name__}); {PREFETCH_HINT}"
            ) from None
        except (RepositoryNotFoundError, EntryNotFoundError) as error:
            raise FileNotFoundError(
                f"{repo_id}/{name} does not exist on the HuggingFace hub (or needs a token): "
                f"{type(error).__name__}; check baseline_sae / baseline_saes"
            ) from None
    return paths[0], paths[1]


def build_published(variant: dict, model_name: str, output: Path) -> dict:
    """The folder (config only) of an SAE that SAE Lens loads: a release's SAE (comparison or
    baseline), loaded once as SAE Bench loads it, or a local SAE Lens folder (baseline). Refused
    when its model is not the configured one, or its hook point is not the baseline's
    `hook_layer` (baseline) or no baseline's (comparison)."""
    from workflow_scripts import published_saes, sae_io

    source = variant["source"]
    if source.get("release"):
        release, sae_id = source["release"], source["sae_id"]
        sae, _ = published_saes.load(release, sae_id)
        where = (
            f"{variant['family']} {variant['id']} (SAE Lens release {release!r}, SAE {sae_id!r})"
        )
        sae_lens = {"release": release, "sae_id": sae_id}
    else:
        folder = str(Path(source["local_dir"]).resolve())
        sae = published_saes.load_local(folder)
        where = f"{variant['family']} {variant['id']} (SAE Lens folder {folder})"
        sae_lens = {"path": folder}
    described = published_saes.describe(sae)
    if not published_saes.model_matches(described["model_name"], model_name):
        raise ValueError(
            f"{where}: trained on {described['model_name']!r}, but the config's model is "
            f"{model_name!r}"
        )
    layer = source.get("hook_layer")  # baselines and local reference SAEs say theirs
    if layer is not None:
        from workflow_scripts.variant_table import baseline_hook

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
    sae_io.save_published(
        output, described, sae_lens, metadata={"source": source, "variant": variant["id"]}
    )
    return described


def build(variant: dict, model_name: str, output: Path, base: Path | None = None):
    from workflow_scripts import sae_io
    from workflow_scripts.dictionary_learning import load_dictionary_learning_sae

    family, source = variant["family"], variant.get("source", {})
    if family == "comparison" or source.get("release"):
        return build_published(variant, model_name, output)
    if family in ("baseline", "reference"):  # a reference frontier's local SAE: as a baseline
        from workflow_scripts.published_saes import is_saelens_folder

        if source.get("local_dir") and is_saelens_folder(source["local_dir"]):
            return build_published(variant, model_name, output)
        if source.get("local_dir"):
            ae = Path(source["local_dir"]) / "ae.pt"
            config = ae.with_name("config.json")
        else:
            ae, config = fetch_checkpoint(source["repo_id"], source["filename"])
        sae = load_dictionary_learning_sae(ae, model_name, source["hook_layer"], config)
        metadata = {"source": {k: v for k, v in source.items() if v is not None}}
    else:
        from workflow_scripts import families
        from workflow_scripts.variant_saes import derive_variant

        if base is None:
            raise ValueError(f"variant {variant['id']} is derived: --base is required")
        key = source.get("config_key", f"encoder_families.{family}")
        cls = families.load_class(source["class"], key)
        families.check_contract(cls, variant["param_name"], key)
        base_sae = sae_io.load_sae(base)
        if sae_io.saelens_source(sae_io.read_config(base)):  # a baseline SAE Lens loads
            from workflow_scripts.published_saes import dictionary_of

            base_sae = dictionary_of(base_sae)
        if variant["param_name"] == "k" and variant["param"] > base_sae.cfg.d_sae:
            raise ValueError(
                f"config key '{source.get('values_key', key)}': k={variant['param']} exceeds "
                f"the width {base_sae.cfg.d_sae} of the baseline {base}"
            )
        sae = derive_variant(family, variant["param"], base_sae, cls=cls)
        metadata = {"derived_from": str(base), "class": source["class"]}
    metadata.update(
        variant=variant["id"],
        family=family,
        param_name=variant.get("param_name"),
        param=variant.get("param"),
    )
    sae_io.save_sae(sae, output, metadata=metadata)
    return sae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="JSON of the variant-table row")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--base", type=Path, help="baseline SAE folder (derived variants)")
    args = parser.parse_args(argv)
    from workflow_scripts.families import FamilyError
    from workflow_scripts.hub_sources import NotCachedError

    try:
        sae = build(json.loads(args.variant), args.model_name, args.output, args.base)
    except (NotCachedError, FamilyError, FileNotFoundError, ValueError) as error:  # said
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    if isinstance(sae, dict):  # a published SAE: its description
        print(
            f"[build_sae] wrote {args.output} (SAE Lens {sae['sae_lens_architecture']}, "
            f"d_in={sae['d_in']}, d_sae={sae['d_sae']}, {sae['hook_name']})"
        )
        return 0
    print(
        f"[build_sae] wrote {args.output} ({sae.cfg.architecture}, d_in={sae.cfg.d_in}, "
        f"d_sae={sae.cfg.d_sae})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
