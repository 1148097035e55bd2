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
        variants=json.dumps([json.loads(variant_json(v)) for v in VARIANTS]),
        eval_types=EVAL_TYPES,
        # prefixes derived from the inputs, as --lint asks (no hard-coded paths in params)
        saes_dir=lambda wc, input: os.path.dirname(input.saes[0]),
        evals_dir=lambda wc, input: os.path.join(
            os.path.dirname(os.path.dirname(input.saes[0])), "evals"
        ),
        records_dir=lambda wc, input: os.path.join(
            os.path.dirname(os.path.dirname(input.saes[0])), "workflow_metrics"
        ),
        seeds=f"--main-seed {MAIN_SEED} --extra-seeds {' '.join(map(str, EXTRA_SEEDS))}",
        replicated=REPLICATED,
        ranking=ranking_argument(),
        reference=reference_argument(),
        allow_missing="--allow-missing" if config["allow_missing"] else "",
        threshold=config["visualization"]["headline_threshold"],
        config=json.dumps(config, sort_keys=True, default=str),
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.results.collect --variants {params.variants:q} --eval-types {params.eval_types}'
        " --saes-dir {params.saes_dir} --evals-dir {params.evals_dir} --records-dir {params.records_dir}"
        " {params.seeds} --replicated {params.replicated} {params.ranking} {params.reference}"
        " --matched-csv {output.matched} --csv {output.csv} --json {output.json} --long-csv {output.long} --versus-csv {output.versus}"
        " {params.allow_missing} --threshold {params.threshold} --summary-md {output.summary_md}"
        " --summary-rst {output.summary_rst} --summary-html {output.summary_html}"
        " --config {params.config:q} --config-dump {output.config}"
        " --saebench-dir {output.saebench} > {log} 2>&1"


rule plot:
    input:
        table=f"{OUT}/merged/metrics.csv",
        long=f"{OUT}/merged/metrics_long.csv",
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
        '"$SAEBENCH_PYTHON" -m workflow_scripts.results.plots --table {input.table} --long {input.long}'
        " --versus {input.versus} --eval-types {params.eval_types}"
        " {params.ranking} {params.reference}"
        " --style {params.style:q} --threshold {params.threshold} --out-dir {params.out_dir} > {log} 2>&1"


localrules:
    aggregate,
    plot,
