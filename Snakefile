# Evaluate SAE variants (IHTP, MPSAE, published SAEs) against a baseline SAE with SAE Bench.
# Every (variant, eval type) pair is its own job: see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/saes.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        final_outputs(),
