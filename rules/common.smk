# Config validation, and every helper the rules share: one variant table, one eval registry, the
# input functions and target builders. Rule files hold only rules. Nothing here imports torch or
# matplotlib: `snakemake -n` stays fast.
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError

from workflow_scripts.plan import prefetch as prefetch_plans
from workflow_scripts.evals import registry as eval_registry
from workflow_scripts.plan.headlines import ranking_problems
from workflow_scripts.plan.outputs import HEATMAP, l0_plot_name, plot_file_names
from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.variants import (
    build_variant_table,
    known_sae_widths,
    reference_ids,
    width_problems,
)

# A run's jobs use the configuration the run started with. On a cluster every job starts its own
# Snakemake, which reads the config files again (plugin 2.8.0: `--configfiles ...` in each
# sbatch command): a config edited while a long run is in flight would reach the jobs that start
# after the edit, under the rule parameters the run recorded for the old one (Snakemake issue
# #3234 reports such runs). The main process freezes the validated config into .snakemake/ and
# hands its path to every job through the environment (sbatch --export=ALL); jobs read it
# instead of the files. Upstream rules never rerun inside a job: it is started with
# `--allowed-rules <its rule>`.
FROZEN_CONFIG_VARIABLE = "SAE_WORKFLOW_FROZEN_CONFIG"
_frozen = os.environ.get(FROZEN_CONFIG_VARIABLE)
if not workflow.is_main_process and _frozen:
    if not Path(_frozen).is_file():  # never fall back to the (maybe edited) files silently
        raise WorkflowError(
            f"the run's frozen configuration {_frozen} is gone (was .snakemake/ removed while "
            "the run was in flight?): start the run again"
        )
    config.clear()
    config.update(json.loads(Path(_frozen).read_text()))

try:
    config.update(validate_config(config))
    VARIANTS = {v.id: v for v in build_variant_table(config)}
    widths = known_sae_widths(config, VARIANTS)
    eval_registry.check_requirements(config, widths)
    problems = width_problems(VARIANTS, widths)
    problems += eval_registry.replicate_problems(config)
    problems += ranking_problems(config, eval_registry.enabled_eval_types(config))
    if problems:
        raise ConfigError("; ".join(problems))
except ConfigError as error:
    raise WorkflowError(f"Invalid configuration: {error}") from None

if workflow.is_main_process:
    _text = json.dumps(config, sort_keys=True, default=str)
    _frozen = Path(
        ".snakemake", "frozen_config", f"{hashlib.sha256(_text.encode()).hexdigest()[:16]}.json"
    )
    _frozen.parent.mkdir(parents=True, exist_ok=True)
    if not _frozen.is_file():
        _partial = _frozen.with_suffix(f".partial-{os.getpid()}")
        _partial.write_text(_text)
        os.replace(_partial, _frozen)  # whole or absent, also with two runs starting at once
    os.environ[FROZEN_CONFIG_VARIABLE] = os.path.abspath(_frozen)  # the path jobs see too

OUT = config["output_dir"]
PREFETCH_PLAN = prefetch_plans.prefetch_plan(config, list(VARIANTS.values()), OUT)
if config["hf_home"]:
    # every job (local or through sbatch) inherits the cache location
    os.environ.update(HF_HOME=os.path.abspath(config["hf_home"]))
EVAL_TYPES = eval_registry.enabled_eval_types(config)
IMPORTED = [v for v in VARIANTS.values() if not v.derived]
DERIVED = [v for v in VARIANTS.values() if v.derived]
# Replicates: the main seed's results keep the plain paths; every other seed of
# `replicates.seeds` reruns the seed-dependent eval types under seed_<seed>/.
MAIN_SEED = config["random_seed"]
EXTRA_SEEDS = [s for s in eval_registry.replicate_seeds(config) if s != MAIN_SEED]
REPLICATED = [e for e in EVAL_TYPES if eval_registry.REGISTRY[e].seed_dependent]
CAPTIONS = Path(workflow.basedir) / "rules" / "report"
AGGREGATE_START = time.time()  # the end-of-run print shows the summary only if this run wrote it
# Every step is a small entry point (`-m workflow_scripts.steps.<step>`) of the package beside
# this Snakefile; jobs inherit this variable, locally and through sbatch.
_pythonpath = [workflow.basedir, *filter(None, os.getenv("PYTHONPATH", "").split(os.pathsep))]
os.environ.update(PYTHONPATH=os.pathsep.join(dict.fromkeys(_pythonpath)))


def saebench_python(config, workflow):
    """The interpreter every job's `-m workflow_scripts.steps.<step>` runs with (config key
    saebench_python, see the schema)."""
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"  # the job's conda environment (envs/saebench.yaml) is activated
    configured = config["saebench_python"]
    beside = Path(workflow.basedir) / ".venv" / "bin" / "python"
    if configured or beside.exists():
        return configured or str(beside)
    # no .venv beside the Snakefile: Snakemake's own interpreter if it has SAE Bench, else PATH's
    import importlib.util

    return sys.executable if importlib.util.find_spec("sae_bench") else "python"


def check_saebench_python():
    """Before the first job of a real run (onstart; a dry run needs no SAE Bench environment)."""
    python = SAEBENCH_PYTHON
    problem = None
    if not shutil.which(python):
        problem = "is not an executable"
    elif python != "python":  # "python": a job's conda env (--sdm conda), not active here
        probe = "import importlib.util as u, sys; sys.exit(u.find_spec('sae_bench') is None)"
        if subprocess.run([python, "-c", probe], capture_output=True, timeout=120).returncode:
            problem = "cannot import sae_bench"
    if problem:
        raise WorkflowError(
            f"Invalid configuration: config key 'saebench_python': {python!r} {problem} (it "
            "must be the SAE Bench environment's Python); create the environments with "
            "`bash envs/install.sh`"
        )


def check_executor_settings():
    """Before the first job of a real run (onstart: `workflow.executor_settings` is set only
    then, not while the DAG is built): refuse the SLURM plugin's array-job submission, and a
    run without `slurm_account` on a site that rejects jobs without one."""
    settings = getattr(workflow, "executor_settings", None)
    if "slurm" not in type(settings).__module__:
        return
    if getattr(settings, "array_jobs", None):
        raise WorkflowError(
            f"slurm-array-jobs is set ({settings.array_jobs!r}): SLURM executor plugins "
            "2.7.1-2.8.0 drop jobs from arrays and can stall at 'Selected jobs: 0' "
            "(snakemake-executor-plugin-slurm issue #473); remove `slurm-array-jobs` from the "
            "profile or the command line: this workflow submits one job per pair "
            "(docs/slurm.md, troubleshooting)"
        )
    check_slurm_account()


# Slurm's message (job_submit and slurmctld's association check): "Invalid account or
# account/partition combination specified"
ACCOUNT_REJECTED = re.compile(r"invalid account", re.I)


def _resource_value(args, name):
    """The value of `name=<value>` among Snakemake's resource arguments, unquoted, or ''."""
    for arg in args:
        key, _, value = str(arg).partition("=")
        if key.strip() == name:
            return value.strip().strip("'\"").strip()
    return ""


def check_slurm_account():
    """Without `slurm_account`, plugin 2.8.0 guesses one with a sacct pipeline it runs without
    a shell (accounts.get_account ~63-81, plugin issue #459: the guess always fails) and then
    submits without -A; a site that requires an account rejects every sbatch, and every job
    burns its retries. One `sbatch --test-only` (validates, submits nothing) finds out first."""
    resources = workflow.resource_settings
    defaults = getattr(resources.default_resources, "args", None) or []
    if _resource_value(defaults, "slurm_account") or any(
        "slurm_account" in r for r in resources.overwrite_resources.values()
    ):
        return  # an account (or several: "proj1, proj2", which the plugin accepts) is given
    if not shutil.which("sbatch"):
        return
    partition = _resource_value(defaults, "slurm_partition")
    command = ["sbatch", "--test-only", "--wrap=true", "--job-name=account-check"]
    command += [f"--partition={partition}"] if partition else []
    try:
        probe = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return  # the controller is slow or absent: the submissions will say so
    message = (probe.stderr or probe.stdout).strip()
    if probe.returncode != 0 and ACCOUNT_REJECTED.search(message):
        raise WorkflowError(
            f"SLURM rejects jobs without an account here ({message!r}) and no `slurm_account` "
            "is set: add `slurm_account: <account>` under default-resources in your copy of "
            "profiles/slurm/config.yaml (or `--default-resources slurm_account=<account>`); "
            "`sacctmgr -n show assoc user=$USER format=account` lists yours"
        )


# Every step runs with the SAE Bench environment's interpreter, which need not be the one running
# Snakemake: on a cluster Snakemake and its SLURM plugin (numpy 2) run in .venv-scheduler. Rules
# read it from the environment, which every job inherits (locally and through sbatch): like the
# PATH before it, it is not part of a job's provenance, so moving the environment reruns nothing.
SAEBENCH_PYTHON = saebench_python(config, workflow)
os.environ.update(SAEBENCH_PYTHON=SAEBENCH_PYTHON)


def _alternatives(ids):
    return "|".join(re.escape(i) for i in ids) or "$^"


wildcard_constraints:
    variant=_alternatives(VARIANTS),
    imported=_alternatives(v.id for v in IMPORTED),
    derived=_alternatives(v.id for v in DERIVED),
    eval_type=_alternatives(EVAL_TYPES),
    seed=_alternatives(str(s) for s in EXTRA_SEEDS),


# ---- targets ----------------------------------------------------------------------------------


def plot_outputs():
    return [f"{OUT}/plots/{name}" for name in plot_file_names(EVAL_TYPES)]


def final_outputs():
    return [f"{OUT}/merged/metrics.csv", *plot_outputs()]


# ---- SAEs and evaluations ---------------------------------------------------------------------


def variant_json(variant_id):
    variant = VARIANTS[variant_id]
    return json.dumps({**variant.__dict__, "source": dict(variant.source)}, default=str)


def derived_base(wildcards):
    """The SAE folder of the baseline a derived variant is built from."""
    return f"{OUT}/saes/{VARIANTS[wildcards.derived].baseline}"


def demo_inputs():
    """The locally built demo model/SAE/datasets, when the config builds them."""
    return [config["demo"]["dir"]] if config["demo"]["build"] else []


def eval_job_settings(eval_type, seed=None):
    settings = eval_registry.job_settings(config, eval_type, seed)
    return json.dumps(prefetch_plans.offline_job_settings(settings, PREFETCH_PLAN))


def eval_threads(wildcards):
    return eval_registry.job_resources(config, wildcards.eval_type)["cpus_per_task"]


def eval_resource(name):
    """`name` of an evaluation job at its attempt: scaled on retry, capped (registry)."""

    def get(wildcards, attempt):
        return eval_registry.job_resources(config, wildcards.eval_type, attempt)[name]

    return get


# ---- aggregation, plots, report ---------------------------------------------------------------


def evaluated(eval_type):
    """The variants that get jobs of `eval_type`: all, but for an eval that reads only the decoder
    (meta-structure) the derived variants, which reuse their baseline's decoder and share its
    value (results/collect.py)."""
    if eval_registry.REGISTRY[eval_type].decoder_only:
        return [v for v in VARIANTS if not VARIANTS[v].derived]
    return list(VARIANTS)


def replicate_runs():
    """(eval_type, variant, folder) of every evaluation job: the main seed's under
    `<eval_type>/`, each extra seed's under `<eval_type>/seed_<seed>/`."""
    runs = [(e, v, e) for e in EVAL_TYPES for v in evaluated(e)]
    runs += [(e, v, f"{e}/seed_{s}") for e in REPLICATED for s in EXTRA_SEEDS for v in evaluated(e)]
    return runs


def aggregate_eval_inputs(wildcards):
    """Every job's SAE Bench JSON and workflow record. With allow_missing, less the jobs that
    already ran and failed (log exists, JSON does not), so the comparison is made with what
    exists; a job that never ran is still waited for. Rerun a skipped one by asking for its JSON."""
    inputs = []
    for e, v, folder in replicate_runs():
        result = f"{OUT}/evals/{folder}/{v}.json"
        failed = not Path(result).exists() and Path(f"logs/evaluate/{folder}/{v}.log").exists()
        if not (config["allow_missing"] and failed):
            inputs += [result, f"{OUT}/workflow_metrics/{folder}/{v}.json"]
    return inputs


def aggregate_plan(input, output):
    """The aggregate step's one argument (steps/aggregate.py documents its keys)."""
    saes_dir = os.path.dirname(input.saes[0])
    results_dir = os.path.dirname(saes_dir)
    plan = {
        "variants": [json.loads(variant_json(v)) for v in VARIANTS],
        "eval_types": EVAL_TYPES,
        "replicated": REPLICATED,
        "decoder_only": [e for e in EVAL_TYPES if eval_registry.REGISTRY[e].decoder_only],
        "saes_dir": saes_dir,
        "evals_dir": os.path.join(results_dir, "evals"),
        "records_dir": os.path.join(results_dir, "workflow_metrics"),
        "main_seed": MAIN_SEED,
        "extra_seeds": EXTRA_SEEDS,
        "allow_missing": config["allow_missing"],
        "threshold": config["visualization"]["headline_threshold"],
        "ranking": config["ranking"]["metrics"] or None,
        "reference": reference_ids(config, VARIANTS),
        "correction": config["statistics"]["correction"],
        "pooled_noise": config["statistics"]["pooled_noise"],
        "config": json.loads(json.dumps(config, sort_keys=True, default=str)),
        "outputs": {
            name: output[name]
            for name in ("csv", "json", "long", "versus", "matched", "ranks")
            + ("summary_md", "summary_rst", "summary_html", "config", "saebench")
        },
    }
    return json.dumps(plan)


def reference_argument():
    """`--reference '<json>'`: the reference-frontier SAEs (matched-L0 verdicts), if any."""
    ids = reference_ids(config, VARIANTS)
    return f"--reference {shlex.quote(json.dumps(ids))}" if ids else ""


def ranking_argument():
    """`--ranking '<json>'` for the aggregation when the config sets ranking.metrics."""
    metrics = config["ranking"]["metrics"]
    return f"--ranking {shlex.quote(json.dumps(metrics))}" if metrics else ""


def l0_caption(eval_type):
    """report/l0_vs_<eval_type>.rst (relative to rules/), or the generic one."""
    own = CAPTIONS / f"l0_vs_{eval_type}.rst"
    return f"report/{own.name}" if own.exists() else "report/l0_vs_eval.rst"


def print_summary(path, since=None):
    """Print summary.md at the end of a run (Snakemake's onsuccess), if this run wrote it."""
    path = Path(path)
    if not path.is_file():
        return
    if since is not None and path.stat().st_mtime < since - 1:
        print(f"Summary of the comparison (unchanged): {path}", flush=True)
        return
    print(f"\n{path.read_text()}\nSummary written to {path}", flush=True)
