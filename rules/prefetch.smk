# Fill the HuggingFace cache where Snakemake runs (the login node, which has internet), so that
# every GPU job can run offline: model + tokenizer, SAE checkpoints, eval datasets, core corpus sample.


rule prefetch:
    output:
        f"{OUT}/prefetch/manifest.json",
    log:
        "logs/prefetch.log",
    benchmark:
        "benchmarks/prefetch.tsv"
    conda:
        "../envs/saebench.yaml"
    params:
        plan=json.dumps(PREFETCH_PLAN),
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.prefetch --plan {params.plan:q} --manifest {output} > {log} 2>&1'


localrules:
    prefetch,
