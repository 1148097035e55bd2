# One GPU job per (variant, eval type): SAE Bench's result JSON, unchanged, and beside it the
# workflow's own record of the run (seed, time, and for core the centered explained variance).


rule evaluate:
    input:
        sae=f"{OUT}/saes/{{variant}}",
        demo=demo_inputs(),
        # the cache must exist, however old: a refreshed prefetch does not invalidate results
        prefetched=ancient(f"{OUT}/prefetch/manifest.json"),
    output:
        result=f"{OUT}/evals/{{eval_type}}/{{variant}}.json",
        record=f"{OUT}/workflow_metrics/{{eval_type}}/{{variant}}.json",
    log:
        "logs/evaluate/{eval_type}/{variant}.log",
    benchmark:
        "benchmarks/evaluate/{eval_type}/{variant}.tsv"
    conda:
        "../envs/saebench.yaml"
    threads: eval_threads
    resources:
        gpu=1,
        mem_mb=eval_resource("mem_mb"),
        runtime=eval_resource("runtime"),
        cpus_per_task=lambda wc, threads: threads,
    params:
        settings=lambda wc: eval_job_settings(wc.eval_type),
        artifacts=f"{OUT}/{config['activation_caching']['artifacts_dir']}",
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.evaluate --eval-type {wildcards.eval_type} --variant {wildcards.variant}'
        " --sae-dir {input.sae} --threads {threads} --settings {params.settings:q} --artifacts-root {params.artifacts}"
        " --output {output.result} --workflow-output {output.record} > {log} 2>&1"


# The same pair again with another seed of `replicates.seeds` (seed-dependent eval types only).
use rule evaluate as evaluate_replicate with:
    output:
        result=f"{OUT}/evals/{{eval_type}}/seed_{{seed}}/{{variant}}.json",
        record=f"{OUT}/workflow_metrics/{{eval_type}}/seed_{{seed}}/{{variant}}.json",
    log:
        "logs/evaluate/{eval_type}/seed_{seed}/{variant}.log",
    benchmark:
        "benchmarks/evaluate/{eval_type}/seed_{seed}/{variant}.tsv"
    params:
        settings=lambda wc: eval_job_settings(wc.eval_type, int(wc.seed)),
        artifacts=f"{OUT}/{config['activation_caching']['artifacts_dir']}",
