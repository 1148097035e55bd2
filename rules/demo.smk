# The offline demo: a small language model, tokenizer, baseline SAE and stand-in datasets built
# locally (no network), so the whole workflow runs on a CPU.
if config["demo"]["build"]:

    rule build_demo_assets:
        output:
            directory(config["demo"]["dir"]),
        log:
            "logs/build_demo_assets.log",
        benchmark:
            "benchmarks/build_demo_assets.tsv"
        conda:
            "../envs/saebench.yaml"
        params:
            seed=config["demo"]["seed"],
        shell:
            '"$SAEBENCH_PYTHON" -m workflow_scripts.demo.build --out {output} --seed {params.seed} > {log} 2>&1'
