# Evaluate SAE variants (IHTP, MPSAE, published SAEs) against a baseline SAE with SAE Bench.
# Every (variant, eval type) pair is its own job: see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/prefetch.smk"
include: "rules/saes.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        final_outputs(),


# A real run needs the SAE Bench environment (a dry run, `-n`, does not) and no SLURM arrays.
onstart:
    check_executor_settings()
    check_saebench_python()


# The ranked summary table (results/merged/summary.md), printed where the user looks: at the end.
onsuccess:
    print_summary(f"{OUT}/merged/summary.md", since=AGGREGATE_START)
