"""The one place that turns a validated config into the list of SAE variants.

Every rule, the aggregation and the plots ask this table for ids, families and parameters;
nothing re-derives them from strings elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workflow_scripts.plan import families, releases
from workflow_scripts.plan.config import ConfigError
from workflow_scripts.plan.releases import model_matches

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
# imported as they are (not derived from a baseline); "reference": reference-frontier points
IMPORTED_FAMILIES = ("baseline", "comparison", "reference")


@dataclass(frozen=True)
class Variant:
    id: str
    family: str  # baseline | comparison | an encoder family (ihtp, mpsae, mpsae_nonneg, yours)
    param_name: str | None = None
    param: int | None = None
    source: dict = field(default_factory=dict, compare=False, hash=False)
    # the baseline this variant is built from and compared with (a baseline: itself; a published
    # comparison SAE: the first baseline)
    baseline: str | None = None

    @property
    def derived(self) -> bool:
        return self.family not in IMPORTED_FAMILIES


def comparison_id(release: str, sae_id: str) -> str:
    """Id of a published SAE: its release and SAE id, which are unique together."""
    return f"{release}__{sae_id}".replace("/", "_")


def baselines(config: dict) -> list[tuple[str, dict]]:
    """(id, source) of every baseline: `baseline_saes` when set (keys it leaves out come from
    `baseline_sae`), else the one `baseline_sae` with id `baseline`. One entry keeps the id
    `baseline` whatever its name, so single-baseline ids never change."""
    listed = config.get("baseline_saes")
    if not listed:
        return _checked_sources([("baseline", dict(config["baseline_sae"]))], "baseline_sae")
    defaults = dict(config["baseline_sae"])
    entries = []
    for i, entry in enumerate(listed):
        source = {**defaults, **{k: v for k, v in entry.items() if k != "name"}}
        if "local_dir" not in entry and ({"repo_id", "filename", "release"} & set(entry)):
            source["local_dir"] = None  # a hub checkpoint, not baseline_sae's local folder
        if "release" not in entry and ({"repo_id", "filename", "local_dir"} & set(entry)):
            source["release"] = source["sae_id"] = None  # not baseline_sae's release
        if "hook_layer" not in entry and len(listed) > 1:
            raise ConfigError(
                f"config key 'baseline_saes.{i}.hook_layer': required with several baselines"
            )
        entries.append((entry["name"] if len(listed) > 1 else "baseline", source))
    names = [name for name, _ in entries]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"config key 'baseline_saes': the name {name!r} is used twice")
    return _checked_sources(entries, "baseline_saes")


def _checked_sources(entries: list[tuple[str, dict]], key: str) -> list[tuple[str, dict]]:
    """An SAE Lens release needs its sae_id and the other way round; the release's model is
    checked against the directory when the DAG is built, its hook point in the import job."""
    for i, (_, source) in enumerate(entries):
        where = key if key == "baseline_sae" else f"{key}.{i}"
        if bool(source.get("release")) != bool(source.get("sae_id")):
            raise ConfigError(f"config key '{where}': release and sae_id go together")
    return entries


def baseline_hook(source: dict) -> str:
    """Hook point of a baseline: dictionary_learning checkpoints read the residual stream after
    block `hook_layer` (SAE Bench's and SAE Lens's loaders both assume it)."""
    return f"blocks.{int(source['hook_layer'])}.hook_resid_post"


def derived_id(baseline: str, family: str, param_name: str, value: int, several: bool) -> str:
    """`ihtp_k5` with one baseline; `<baseline>__ihtp_k5` with several."""
    own = f"{family}_{param_name}{value}"
    return f"{baseline}__{own}" if several else own


def build_variant_table(config: dict) -> list[Variant]:
    """Variants in a stable order: each baseline followed by its derived families, then the
    comparison SAEs."""
    bases = baselines(config)
    several = len(bases) > 1
    try:
        derived = families.families(config)
        for family in derived:
            families.check_static(family)
    except families.FamilyError as error:
        raise ConfigError(str(error)) from None
    for _, source in bases:
        if source.get("release"):
            _check_release(config, source)
    variants = []
    for base_id, source in bases:
        variants.append(Variant(base_id, "baseline", source=source, baseline=base_id))
        for family in derived:
            spec = {
                "class": family.class_path,
                "config_key": family.key,
                "values_key": family.values_key,
            }
            for value in family.values:
                variant_id = derived_id(base_id, family.name, family.param_name, value, several)
                variants.append(
                    Variant(
                        variant_id, family.name, family.param_name, value, spec, baseline=base_id
                    )
                )

    hooks = sorted({baseline_hook(source) for _, source in bases})

    def published_variant(sae, family: str) -> Variant:
        """A published SAE, checked in its import job against the baselines' hook points."""
        source = {**sae.__dict__, "baseline_hooks": hooks}
        return Variant(
            comparison_id(sae.release, sae.sae_id), family, source=source, baseline=bases[0][0]
        )

    comparison = config["comparison_saes"]
    if comparison["enabled"]:
        for sae in _published(config, "comparison_saes", comparison):
            variants.append(published_variant(sae, "comparison"))
    frontier = config["reference_frontier"]
    taken = {v.id for v in variants}
    for i, entry in enumerate(frontier["local_saes"]):
        if entry["name"] in taken:
            raise ConfigError(
                f"config key 'reference_frontier.local_saes.{i}.name': {entry['name']!r} is "
                "already a variant id"
            )
        taken.add(entry["name"])
        source = {"local_dir": entry["local_dir"], "hook_layer": entry["hook_layer"]}
        source.update(release=None, sae_id=None, baseline_hooks=hooks)
        variants.append(Variant(entry["name"], "reference", source=source, baseline=bases[0][0]))
    if frontier["sae_regex_pattern"]:
        known = {v.id for v in variants}
        for sae in _published(config, "reference_frontier", frontier):
            if comparison_id(sae.release, sae.sae_id) not in known:  # already a comparison SAE
                variants.append(published_variant(sae, "reference"))

    seen = set()
    for variant in variants:
        if not ID_PATTERN.match(variant.id):
            raise ConfigError(f"variant id {variant.id!r} must match {ID_PATTERN.pattern}")
        if variant.id in seen:
            raise ConfigError(f"config key 'sae_variants': duplicate variant id {variant.id!r}")
        seen.add(variant.id)
    return variants


def _check_release(config: dict, source: dict) -> None:
    """A baseline's SAE Lens release and sae_id exist in SAE Lens's directory and are for the
    configured model (a HuggingFace repo id with a slash, which SAE Lens also loads, is left to
    the import job)."""
    key = "baseline_saes" if config.get("baseline_saes") else "baseline_sae"
    release, sae_id = source["release"], source["sae_id"]
    entry = releases.release_directory().get(release)
    if entry is None:
        if "/" in release:
            return
        raise ConfigError(f"config key '{key}': release {release!r} is not in SAE Lens's directory")
    ids = [sae["id"] for sae in entry.get("saes", [])]
    if sae_id not in ids:
        raise ConfigError(
            f"config key '{key}': release {release!r} has no SAE {sae_id!r} "
            f"(e.g. {', '.join(ids[:3])})"
        )
    path = next(sae.get("path", "") for sae in entry["saes"] if sae["id"] == sae_id)
    published = releases.PublishedSAE(
        release, sae_id, entry.get("repo_id", ""), path, entry.get("conversion_func"), ""
    )
    if published.transcoder:
        raise ConfigError(
            f"config key '{key}': release {release!r} SAE {sae_id!r} is a transcoder, which "
            "SAE Bench cannot evaluate as an SAE (it writes to another hook than it reads)"
        )
    if entry.get("model") and not model_matches(entry["model"], config["model"]["name"]):
        raise ConfigError(
            f"config key '{key}': release {release!r} is for model {entry['model']!r}, but "
            f"model.name is {config['model']['name']!r}"
        )


def _published(config: dict, key: str, section: dict) -> list:
    """The SAE Lens releases' SAEs `section`'s patterns select; ConfigError naming `key` when
    none match, a pattern is not a regex, or a release is for another model."""
    try:
        matched = releases.resolve(
            section["sae_regex_pattern"], section["sae_block_pattern"] or ".*"
        )
    except Exception as error:  # a bad regex is a config error, not a crash
        raise ConfigError(f"config key '{key}': {error}") from None
    if not matched:
        raise ConfigError(
            f"config key '{key}': no SAE Lens release matches "
            f"sae_regex_pattern={section['sae_regex_pattern']!r} with "
            f"sae_block_pattern={section['sae_block_pattern']!r}"
        )
    transcoders = [s for s in matched if s.transcoder]
    if transcoders:
        named = ", ".join(f"{s.release!r} SAE {s.sae_id!r}" for s in transcoders[:5])
        more = f" and {len(transcoders) - 5} more" if len(transcoders) > 5 else ""
        raise ConfigError(
            f"config key '{key}': the patterns match transcoders, which SAE Bench cannot "
            f"evaluate as SAEs (they write to another hook than they read): release {named}"
            f"{more}; narrow sae_regex_pattern / sae_block_pattern to exclude them"
        )
    model = config["model"]["name"]
    wrong_model = sorted(
        {(s.release, s.model) for s in matched if not model_matches(s.model, model)}
    )
    if wrong_model:
        raise ConfigError(
            f"config key '{key}': "
            + "; ".join(f"release {r!r} is for model {m!r}" for r, m in wrong_model)
            + f", but model.name is {model!r}"
        )
    return matched


def reference_ids(config: dict, variants: dict) -> list[str]:
    """Ids of the reference-frontier points: the baselines (when `reference_frontier.baselines`)
    and the reference SAEs (local and published; a published one may also be a comparison)."""
    frontier = config["reference_frontier"]
    ids = [v.id for v in variants.values() if v.family == "reference"]
    if frontier["baselines"]:
        ids = [v.id for v in variants.values() if v.family == "baseline"] + ids
    if frontier["sae_regex_pattern"]:
        published = _published(config, "reference_frontier", frontier)
        ids += [
            i
            for i in (comparison_id(s.release, s.sae_id) for s in published)
            if i in variants and i not in ids
        ]
    return ids


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


def width_problems(variants: dict[str, Variant], widths: dict[str, int]) -> list[str]:
    """Derived variants whose `k` exceeds their baseline's width, where the width is known when the
    DAG is built (`known_sae_widths`); the derive_sae job checks the others."""
    problems = []
    for v in variants.values():
        width = widths.get(v.baseline)
        if v.derived and v.param_name == "k" and width and v.param > width:
            problems.append(
                f"config key '{v.source.get('values_key', v.family)}': k={v.param} exceeds the "
                f"width {width} of baseline '{v.baseline}' (variant {v.id})"
            )
    return problems


def baseline_pairs(rows: list[dict]) -> dict[str, str]:
    """variant -> the baseline it is compared with, from the imported SAEs' rows
    (`variant`, `family`, `baseline`, `hook`: the merged table's columns).

    Derived variants name their baseline in the variant table. A published SAE's hook point is
    known only once it is imported, so a comparison or reference SAE is paired with the first
    baseline on its hook point, if there is one (the variant table names the first baseline)."""
    ids = {row["variant"] for row in rows}
    pairs = {
        row["variant"]: row["baseline"]
        for row in rows
        if isinstance(row.get("baseline"), str) and row["baseline"] in ids
    }
    baseline_on = {}
    for row in rows:
        if row.get("family") == "baseline":
            baseline_on.setdefault(row.get("hook"), row["variant"])
    for row in rows:
        if row.get("family") in ("comparison", "reference") and row.get("hook") in baseline_on:
            pairs[row["variant"]] = baseline_on[row["hook"]]
    return pairs
