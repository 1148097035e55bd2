"""The offline demo: a small language model, tokenizer, baseline SAE and stand-in datasets built
locally from one seed (`build.py`; text in `text.py` from the lists and templates of
`language.yaml`; `tokenizer.py`, `language_model.py`, `sae.py` for the rest)."""
