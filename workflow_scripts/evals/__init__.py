"""SAE Bench's evals as the workflow runs them.

- `registry`: the eval types, their headline metrics, job settings and resources.
- `core`, `sparse_probing` (with sae-probes), `scr_tpp`, `absorption`, `autointerp`,
  `unlearning`: one module per SAE Bench entry point, with its runner and up-front checks.
- `patches`: every runtime change to SAE Bench and the libraries it calls, with the file and line
  it targets and why; `local_loaders`: the local model/dataset readers those patches use.
- `base`: the types they share.
"""
