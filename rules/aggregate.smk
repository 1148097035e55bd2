# Collect every pair into one table and the comparison plots.


rule aggregate:
    input:
        evals=eval_outputs(),
        saes=expand(f"{OUT}/saes/{{variant}}", variant=VARIANTS),
    output:
        csv=f"{OUT}/merged/metrics.csv",
        json=f"{OUT}/merged/metrics.json",
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    params:
        variants=json.dumps([json.loads(variant_json(v)) for v in VARIANTS]),
        eval_types=EVAL_TYPES,
        saes_dir=lambda wc, input: os.path.dirname(input.saes[0]),
        evals_dir=lambda wc, input: os.path.dirname(os.path.dirname(input.evals[0])),
    conda:
        "../envs/saebench.yaml"
    shell:
        "python -m workflow_scripts.aggregate --variants {params.variants:q} --eval-types {params.eval_types}"
        " --saes-dir {params.saes_dir} --evals-dir {params.evals_dir} --csv {output.csv} --json {output.json}"
        " > {log} 2>&1"


rule plot:
    input:
        f"{OUT}/merged/metrics.csv",
    output:
        plot_outputs(),
    log:
        "logs/plot.log",
    benchmark:
        "benchmarks/plot.tsv"
    params:
        eval_types=EVAL_TYPES,
        style=json.dumps(config["visualization"]),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    conda:
        "../envs/saebench.yaml"
    shell:
        "python -m workflow_scripts.plot_metrics --table {input} --eval-types {params.eval_types}"
        " --style {params.style:q} --out-dir {params.out_dir} > {log} 2>&1"


localrules:
    aggregate,
    plot,
