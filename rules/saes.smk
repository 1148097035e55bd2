# Every SAE the evaluations read is a folder results/saes/{variant}/ (safetensors + JSON config).


rule import_sae:
    """Baseline (dictionary_learning checkpoint) and published comparison SAEs."""
    input:
        demo_inputs(),
    output:
        directory(f"{OUT}/saes/{{imported}}"),
    log:
        "logs/import_sae/{imported}.log",
    benchmark:
        "benchmarks/import_sae/{imported}.tsv"
    conda:
        "../envs/saebench.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        variant=lambda wc: variant_json(wc.imported),
        model=config["model"]["name"],
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.import_sae --variant {params.variant:q} --model-name {params.model:q}'
        " --output {output} > {log} 2>&1"


rule derive_sae:
    """IHTP / MPSAE variants: their baseline's dictionary with a pursuit encoder."""
    input:
        base=derived_base,
    output:
        directory(f"{OUT}/saes/{{derived}}"),
    log:
        "logs/derive_sae/{derived}.log",
    benchmark:
        "benchmarks/derive_sae/{derived}.tsv"
    conda:
        "../envs/saebench.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        variant=lambda wc: variant_json(wc.derived),
    shell:
        '"$SAEBENCH_PYTHON" -m workflow_scripts.steps.derive_sae --variant {params.variant:q}'
        " --base {input.base} --output {output} > {log} 2>&1"


# Imports read the HuggingFace hub, which cluster compute nodes usually cannot reach; they are
# cheap, so they run where snakemake runs (the login node).
localrules:
    import_sae,
