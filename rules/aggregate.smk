# Collect every pair into one table, a ranked summary and the comparison plots; all of them are
# marked for `snakemake --report results/report.html` (captions under rules/report/).


rule aggregate:
    input:
        evals=aggregate_eval_inputs,
        saes=expand(f"{OUT}/saes/{{variant}}", variant=VARIANTS),
    output:
        csv=report(
            f"{OUT}/merged/metrics.csv",
            caption="report/metrics_table.rst",
            category="3. Tables and configuration",
            labels={"file": "metrics.csv", "content": "every scalar metric"},
        ),
        json=f"{OUT}/merged/metrics.json",
        long=report(
            f"{OUT}/merged/metrics_long.csv",
            caption="report/metrics_long.rst",
            category="3. Tables and configuration",
            labels={"file": "metrics_long.csv", "content": "every value, one row per seed"},
        ),
        versus=report(
            f"{OUT}/merged/versus_baseline.csv",
            caption="report/versus_baseline.rst",
            category="3. Tables and configuration",
            labels={"file": "versus_baseline.csv", "content": "paired differences, verdicts"},
        ),
        matched=report(
            f"{OUT}/merged/matched_l0.csv",
            caption="report/matched_l0.rst",
            category="3. Tables and configuration",
            labels={"file": "matched_l0.csv", "content": "versus the reference frontier"},
        ),
        ranks=f"{OUT}/merged/ranking.csv",
        summary_md=f"{OUT}/merged/summary.md",
        summary_rst=f"{OUT}/merged/summary.rst",
        summary_html=report(
            f"{OUT}/merged/summary.html",
            caption="report/summary.rst",
            category="1. Summary",
            labels={"file": "summary", "content": "ranked headline metrics"},
        ),
        config=report(
            f"{OUT}/merged/config.yaml",
            caption="report/config.rst",
            category="3. Tables and configuration",
            labels={"file": "config.yaml", "content": "configuration of this run"},
        ),
        saebench=directory(f"{OUT}/saebench"),
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        "../envs/saebench.yaml"
    params:
        # one plan (rules/common.smk), not a flag per setting: see steps/aggregate.py
        plan=lambda wc, input, output: aggregate_plan(input, output),
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.aggregate --plan {params.plan:q} > {log} 2>&1'


rule plot:
    input:
        table=f"{OUT}/merged/metrics.csv",
        ranks=f"{OUT}/merged/ranking.csv",
        versus=f"{OUT}/merged/versus_baseline.csv",
    output:
        [
            report(
                f"{OUT}/plots/{l0_plot_name(e)}",
                caption=l0_caption(e),
                category="2. Plots",
                subcategory="L0 against headline metrics",
                labels={"eval type": e, "figure": f"L0 vs {e} headline metrics"},
            )
            for e in EVAL_TYPES
        ],
        heatmap=report(
            f"{OUT}/plots/{HEATMAP}",
            caption="report/heatmap.rst",
            category="2. Plots",
            subcategory="Overview",
            labels={"eval type": "all", "figure": "heat map of headline metrics"},
        ),
    log:
        "logs/plot.log",
    benchmark:
        "benchmarks/plot.tsv"
    conda:
        "../envs/saebench.yaml"
    params:
        eval_types=EVAL_TYPES,
        style=json.dumps(config["visualization"]),
        threshold=config["visualization"]["headline_threshold"],
        out_dir=lambda wc, output: os.path.dirname(output.heatmap),
        ranking=ranking_argument(),
        reference=reference_argument(),
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.plot --table {input.table} --ranks {input.ranks}'
        " --versus {input.versus} --eval-types {params.eval_types}"
        " {params.ranking} {params.reference}"
        " --style {params.style:q} --threshold {params.threshold} --out-dir {params.out_dir} > {log} 2>&1"


localrules:
    aggregate,
    plot,
