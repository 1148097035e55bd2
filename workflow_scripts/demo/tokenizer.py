"""The demo's tokenizer: word level, `<bos>` prepended, left padding, as TransformerLens and SAE
Bench's absorption eval expect (its prompt suffix " has the first letter:" is 5 tokens)."""

from __future__ import annotations

from pathlib import Path


def build_tokenizer(texts: list[str], out: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
    )
    bos_id = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
        padding_side="left",
        model_max_length=1_000_000,
    )
    fast.save_pretrained(str(out))
    # reload exactly as the model loader will, so training sees the same tokenizer
    return AutoTokenizer.from_pretrained(str(out), add_bos_token=True, padding_side="left")


def token_chunks(tokenizer, texts: list[str], seq_len: int):
    """Concatenate documents separated by <eos>, cut into rows of seq_len, row starts with <bos>."""
    import torch

    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    body = seq_len - 1
    n = len(ids) // body
    arr = torch.tensor(ids[: n * body], dtype=torch.long).view(n, body)
    bos = torch.full((n, 1), tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, arr], dim=1), len(ids)
