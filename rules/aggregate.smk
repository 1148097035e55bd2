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
    shell:
        "{PY} workflow_scripts.aggregate --variants {params.variants:q} --eval-types {params.eval_types}"
        " --saes-dir {OUT}/saes --evals-dir {OUT}/evals --csv {output.csv} --json {output.json}"
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
    shell:
        "{PY} workflow_scripts.plot_metrics --table {input} --eval-types {params.eval_types}"
        " --style {params.style:q} --out-dir {OUT}/plots > {log} 2>&1"


localrules:
    aggregate,
    plot,
