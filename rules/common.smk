# Config validation, and the helpers that all rules share: one variant table, one eval registry.
import json
import re
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError

from workflow_scripts import eval_registry, hub_sources
from workflow_scripts.settings import ConfigError, validate_config
from workflow_scripts.variant_table import build_variant_table, known_sae_widths

try:
    config.update(validate_config(config))
    VARIANTS = {v.id: v for v in build_variant_table(config)}
    eval_registry.check_requirements(config, known_sae_widths(config, VARIANTS))
except ConfigError as error:
    raise WorkflowError(f"Invalid configuration: {error}") from None

OUT = config["output_dir"]
PREFETCH_PLAN = hub_sources.prefetch_plan(config, list(VARIANTS.values()), OUT)
if config["hf_home"]:
    # every job (local or through sbatch) inherits the cache location
    os.environ.update(HF_HOME=os.path.abspath(config["hf_home"]))
EVAL_TYPES = eval_registry.enabled_eval_types(config)
IMPORTED = [v for v in VARIANTS.values() if not v.derived]
DERIVED = [v for v in VARIANTS.values() if v.derived]
# Every step is a small entry point (`python -m workflow_scripts.<step>`) of the package beside
# this Snakefile; jobs inherit this variable, locally and through sbatch.
_pythonpath = [workflow.basedir, *filter(None, os.getenv("PYTHONPATH", "").split(os.pathsep))]
os.environ.update(PYTHONPATH=os.pathsep.join(dict.fromkeys(_pythonpath)))
# ... and run with the interpreter that runs Snakemake, unless a conda env (--sdm conda) is
# activated for the job, which puts its own bin/ first.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]))


def _alternatives(ids):
    return "|".join(re.escape(i) for i in ids) or "$^"


wildcard_constraints:
    variant=_alternatives(VARIANTS),
    imported=_alternatives(v.id for v in IMPORTED),
    derived=_alternatives(v.id for v in DERIVED),
    eval_type=_alternatives(EVAL_TYPES),


def variant_json(variant_id):
    variant = VARIANTS[variant_id]
    return json.dumps({**variant.__dict__, "source": dict(variant.source)}, default=str)


def demo_inputs():
    """The locally built demo model/SAE/datasets, when the config builds them."""
    return [config["demo"]["dir"]] if config["demo"]["build"] else []


def eval_outputs():
    return expand(f"{OUT}/evals/{{eval_type}}/{{variant}}.json", eval_type=EVAL_TYPES, variant=VARIANTS)


def plot_outputs():
    from workflow_scripts.plot_metrics import plot_file_names

    return [f"{OUT}/plots/{name}" for name in plot_file_names(EVAL_TYPES)]


def final_outputs():
    return [f"{OUT}/merged/metrics.csv", *plot_outputs()]


def eval_job_settings(eval_type):
    settings = eval_registry.job_settings(config, eval_type)
    return json.dumps(hub_sources.offline_job_settings(settings, PREFETCH_PLAN))


def eval_resource(name, scale_with_attempt=True):
    def get(wildcards, attempt):
        value = eval_registry.job_resources(config, wildcards.eval_type)[name]
        return value * attempt if scale_with_attempt else value

    return get
