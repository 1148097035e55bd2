"""Build a small, fully local demo for running SAE Bench on a CPU with no network.

Everything is generated deterministically from one seed:

* ``corpus/*.jsonl``       a synthetic English-like corpus (column ``text``), read by SAE Bench's core
                           eval through ``load_dataset(folder, split="train", streaming=True)``;
* ``tokenizer/``           a word-level HF fast tokenizer trained with ``tokenizers``
                           (``<bos>`` is prepended by the post-processor, ``add_bos_token=True``,
                           left padding, as TransformerLens needs);
* ``model/``               a tiny TransformerLens ``HookedTransformer`` trained briefly on the corpus
                           (``config.json`` + ``model.safetensors``);
* ``sae/``                 a ReLU SAE on the last layer's ``hook_resid_post``, in the
                           dictionary_learning format (``ae.pt`` plain tensor state dict +
                           ``config.json``);
* ``datasets/<hub name>/`` local stand-ins in the hub schema (``train.jsonl``/``test.jsonl``);
* ``manifest.json``        what was built, with the measured numbers.

Bias-in-bios note: SAE Bench names the probing task ``LabHC/bias_in_bios_class_set1`` but strips
``_class_set1`` before calling ``load_dataset`` (sae_bench/sae_bench_utils/dataset_utils.py:325 and
sae_bench/evals/scr_and_tpp/dataset_creation.py:120), so ``local_sources.local_datasets`` registers
both names. The stand-in in ``datasets/LabHC/bias_in_bios_class_set1`` holds the set1 professions
(0, 1, 2, 6, 9) plus those SCR/TPP pair up (professor 21, nurse 13, journalist 11, surgeon 25,
psychologist 22, teacher 26); ``filter_dataset`` keeps only the chosen classes for probing.

CLI: ``python -m workflow_scripts.demo_assets --out DIR --seed 42``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

MODEL_NAME = "demo-tiny-lm"
BIAS_IN_BIOS = "LabHC/bias_in_bios"
BIAS_IN_BIOS_SET1 = "LabHC/bias_in_bios_class_set1"
AMAZON = "canrager/amazon_reviews_mcauley_1and5"

DEFAULT_SIZES: dict[str, Any] = {
    # corpus
    "n_corpus_docs": 6000,
    "n_corpus_shards": 2,
    # bias_in_bios stand-in, rows per profession (gender mix is profession dependent)
    "bios_train_per_profession": 800,
    "bios_test_per_profession": 300,
    # amazon stand-in, rows per (category, rating)
    "amazon_train_per_cell": 150,
    "amazon_test_per_cell": 60,
    # language model
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "d_mlp": 256,
    "n_ctx": 128,
    "lm_seq_len": 128,
    "lm_batch_size": 16,
    "lm_steps": 800,
    "lm_lr": 5e-3,
    # SAE
    "sae_expansion": 4,
    "sae_act_seqs": 256,
    "sae_batch_size": 512,
    "sae_steps": 1500,
    "sae_lr": 2e-3,
    "sae_l1_coeff": 0.12,
}

# ----------------------------------------------------------------------------------------------
# Synthetic language
# ----------------------------------------------------------------------------------------------

MALE_NAMES = ["James", "John", "Robert", "Michael", "David", "William", "Richard", "Thomas",
              "Daniel", "Paul", "Mark", "George", "Kevin", "Brian", "Edward", "Peter", "Samuel",
              "Henry"]
FEMALE_NAMES = ["Mary", "Linda", "Susan", "Sarah", "Karen", "Nancy", "Lisa", "Emily", "Anna",
                "Laura", "Helen", "Alice", "Grace", "Julia", "Rachel", "Emma", "Olivia", "Sophia"]
SURNAMES = ["Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark", "Lewis",
            "Walker", "Young", "King", "Wright", "Hill", "Green", "Baker", "Adams", "Nelson"]
CITIES = ["Boston", "Chicago", "Denver", "Seattle", "Austin", "Portland", "Atlanta", "Dallas",
          "Phoenix", "Miami", "London", "Paris", "Toronto", "Sydney", "Dublin", "Berlin"]
SCHOOLS = ["Harvard", "Stanford", "Yale", "Oxford", "Princeton", "Columbia", "Cornell", "Duke"]
HOBBIES = ["hiking", "cooking", "reading", "running", "gardening", "painting", "swimming",
           "cycling", "fishing", "traveling", "singing", "dancing"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
           "fifteen", "twenty"]

GENDER_WORDS = {
    0: {"He": "He", "he": "he", "His": "His", "his": "his", "him": "him", "honor": "Mr",
        "family": ["wife", "son", "daughter", "two sons", "brother"], "rel": "husband",
        "names": MALE_NAMES},
    1: {"He": "She", "he": "she", "His": "Her", "his": "her", "him": "her", "honor": "Ms",
        "family": ["husband", "son", "daughter", "two daughters", "sister"], "rel": "wife",
        "names": FEMALE_NAMES},
}

# id -> (title, field of study, domain nouns, verb phrases, female fraction)
PROFESSIONS: dict[int, tuple[str, str, list[str], list[str], float]] = {
    0: ("accountant", "finance", ["taxes", "ledgers", "audits", "budgets", "invoices", "payroll"],
        ["prepares tax returns", "reviews financial statements", "balances the books"], 0.45),
    1: ("architect", "design", ["buildings", "blueprints", "houses", "towers", "bridges", "plans"],
        ["designs modern homes", "draws detailed blueprints", "plans public spaces"], 0.35),
    2: ("attorney", "law", ["contracts", "courts", "clients", "cases", "trials", "disputes"],
        ["represents clients in court", "drafts legal contracts", "argues complex cases"], 0.40),
    6: ("dentist", "dentistry", ["teeth", "gums", "fillings", "smiles", "braces", "cavities"],
        ["cleans teeth", "treats patients with cavities", "runs a dental clinic"], 0.40),
    9: ("filmmaker", "cinema", ["films", "movies", "cameras", "scenes", "documentaries", "festivals"],
        ["directs short films", "shoots documentaries", "edits movies"], 0.35),
    11: ("journalist", "journalism", ["news", "articles", "interviews", "newspapers", "stories",
                                      "headlines"],
         ["writes news articles", "interviews local leaders", "reports breaking stories"], 0.55),
    13: ("nurse", "nursing", ["patients", "wards", "medicine", "shifts", "bandages", "vaccines"],
         ["cares for sick patients", "works night shifts", "gives vaccines"], 0.75),
    21: ("professor", "physics", ["lectures", "students", "research", "courses", "papers", "grants"],
         ["teaches university courses", "publishes research papers", "supervises students"], 0.35),
    22: ("psychologist", "psychology", ["therapy", "anxiety", "behavior", "counseling", "emotions",
                                        "sessions"],
         ["helps clients with anxiety", "runs therapy sessions", "studies human behavior"], 0.65),
    25: ("surgeon", "medicine", ["surgery", "operations", "hearts", "knees", "procedures",
                                 "scalpels"],
         ["performs heart surgery", "operates on injured knees", "leads the surgical team"], 0.30),
    26: ("teacher", "education", ["children", "classrooms", "lessons", "homework", "pupils",
                                  "schools"],
         ["teaches young children", "grades homework", "plans daily lessons"], 0.70),
}
BIOS_PROFESSIONS = sorted(PROFESSIONS)

ANIMALS = ["dog", "cat", "horse", "bird", "fox", "rabbit", "cow", "sheep", "mouse", "bear"]
ADJS = ["big", "small", "red", "green", "old", "young", "happy", "quiet", "bright", "dark",
        "fast", "slow", "warm", "cold", "busy", "calm"]
OBJECTS = ["fence", "table", "river", "road", "garden", "house", "hill", "bridge", "car", "tree"]
VERBS_PAST = ["jumped", "walked", "ran", "looked", "slept", "waited", "climbed", "rested"]
FOODS = ["apples", "bread", "eggs", "cheese", "rice", "oranges", "tomatoes", "coffee", "tea",
         "milk"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "cold", "warm", "foggy", "snowy"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "gray"]
# Six words per letter, so SAE Bench's absorption eval finds every letter of the alphabet in the
# tokenizer's alphabetic tokens (its train/test split of the vocabulary needs each letter on both
# sides: roc_auc_score fails on a letter without words) and the model sees their first letters.
ALPHABET_WORDS = """
axe anchor acorn arrow atlas aunt      bell button basket bottle banjo brick
candle castle cloud crown cactus comet desk drum daisy dragon donkey dune
eagle elbow engine envelope echo elm   feather flute forest fountain frog fig
goat guitar glove globe grape gate     hammer harbor helmet honey hat hut
iron island ink insect ivy ivory       jar jelly jewel jungle juice jeep
kettle key kitten knot kayak koala     lamp ladder lemon lizard leaf log
magnet mirror moon mango mitten mule   needle nest net nickel noodle nut
oak olive onion otter owl oven         pencil piano pillow pumpkin pearl pond
quail quartz quilt quiver quill quince rocket ribbon robot rope ruby rug
saddle shell spoon star stone sock     tiger tent tulip tower trumpet torch
ukulele unicorn uniform urn utensil unit vase valley velvet vest village vine
wagon whale window wheel wolf wand     xylophone xenon xerox xray xebec xylem
yak yacht yarn yogurt yolk yew         zipper zinc zone zoo zigzag zucchini
""".split()
LETTER_WORDS = sorted(set(ANIMALS + OBJECTS + FOODS + HOBBIES + ALPHABET_WORDS + [
    "apple", "ocean", "zebra", "violin", "kite", "queen", "umbrella", "jacket", "yard", "igloo",
    "water", "north"]))

# amazon stand-in: category id -> (name words, product nouns)
AMAZON_CATEGORIES: dict[int, list[str]] = {
    1: ["toy", "puzzle", "doll", "game", "blocks"],
    2: ["phone", "charger", "case", "cable", "headset"],
    3: ["microscope", "sensor", "gloves", "meter", "tape"],
    5: ["guitar", "drum", "piano", "strings", "violin"],
    6: ["laptop", "monitor", "speaker", "keyboard", "camera"],
}
GOOD = ["great", "excellent", "perfect", "wonderful", "love", "recommend"]
BAD = ["terrible", "broken", "awful", "useless", "disappointed", "waste"]


def _bio(rng: random.Random, prof: int, gender: int) -> str:
    title, field, nouns, verbs, _ = PROFESSIONS[prof]
    g = GENDER_WORDS[gender]
    first, last = rng.choice(g["names"]), rng.choice(SURNAMES)
    article = "an" if title[0] in "aeiou" else "a"
    opening = (f"{first} {last} is {article} {title} based in {rng.choice(CITIES)} ."
               if rng.random() < 0.6 else f"{first} {last} lives and works in {rng.choice(CITIES)} .")
    domain = [
        f"{g['He']} {rng.choice(verbs)} .",
        f"{g['His']} work focuses on {rng.choice(nouns)} and {rng.choice(nouns)} .",
        f"{g['He']} has worked with {rng.choice(nouns)} for {rng.choice(NUMBERS)} years .",
        f"{g['He']} studied {field} at {rng.choice(SCHOOLS)} .",
        f"{g['He']} often talks about {rng.choice(nouns)} , {rng.choice(nouns)} and "
        f"{rng.choice(nouns)} .",
        f"{g['honor']} {last} is known for {g['his']} {rng.choice(ADJS)} {rng.choice(nouns)} .",
        f"Colleagues say {g['he']} is a {rng.choice(ADJS)} {title} .",
        f"As {article} {title} , {g['he']} {rng.choice(verbs)} .",
        f"{g['He']} has been {article} {title} for {rng.choice(NUMBERS)} years .",
        f"Being {article} {title} means {g['he']} deals with {rng.choice(nouns)} every day .",
    ]
    personal = [
        f"{g['He']} lives in {rng.choice(CITIES)} with {g['his']} {rng.choice(g['family'])} .",
        f"In {g['his']} free time , {g['he']} enjoys {rng.choice(HOBBIES)} .",
        f"{g['His']} {rng.choice(g['family'])} says {g['he']} is {rng.choice(ADJS)} .",
    ]
    rng.shuffle(domain)
    rng.shuffle(personal)
    body = domain[: rng.randint(3, 4)] + personal[: rng.randint(1, 2)]
    rng.shuffle(body)
    return " ".join([opening] + body)


def _generic_sentence(rng: random.Random) -> str:
    k = rng.randrange(7)
    if k == 0:
        return (f"The {rng.choice(ADJS)} {rng.choice(ANIMALS)} {rng.choice(VERBS_PAST)} "
                f"over the {rng.choice(ADJS)} {rng.choice(OBJECTS)} .")
    if k == 1:
        return f"On {rng.choice(DAYS)} the weather in {rng.choice(CITIES)} was {rng.choice(WEATHER)} ."
    if k == 2:
        name = rng.choice(MALE_NAMES + FEMALE_NAMES)
        return f"{name} bought {rng.choice(NUMBERS)} {rng.choice(FOODS)} at the market ."
    if k == 3:
        return f"The {rng.choice(OBJECTS)} near the {rng.choice(OBJECTS)} is {rng.choice(COLORS)} ."
    if k == 4:
        word = rng.choice(LETTER_WORDS)
        return f"{word} has the first letter : {word[0].upper()} ."
    if k == 5:
        return (f"Every {rng.choice(DAYS)} , the {rng.choice(ANIMALS)} eats "
                f"{rng.choice(FOODS)} in the {rng.choice(OBJECTS)} .")
    return f"It was a {rng.choice(WEATHER)} day and the {rng.choice(ANIMALS)} was {rng.choice(ADJS)} ."


def _review(rng: random.Random, cat: int, rating: float) -> str:
    item = rng.choice(AMAZON_CATEGORIES[cat])
    words = GOOD if rating > 3 else BAD
    return (f"This {item} is {rng.choice(words)} . I bought the {rng.choice(COLORS)} {item} for my "
            f"{rng.choice(['son', 'daughter', 'friend', 'office', 'home'])} and it feels "
            f"{rng.choice(words)} . {rng.choice(words).capitalize()} {item} overall .")


def _corpus_doc(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        prof = rng.choice(BIOS_PROFESSIONS)
        gender = int(rng.random() < PROFESSIONS[prof][4])
        return _bio(rng, prof, gender)
    if r < 0.6:
        cat = rng.choice(sorted(AMAZON_CATEGORIES))
        return _review(rng, cat, rng.choice([1.0, 5.0]))
    return " ".join(_generic_sentence(rng) for _ in range(rng.randint(3, 7)))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _bios_split(rng: random.Random, per_profession: int) -> list[dict]:
    rows = []
    for prof in BIOS_PROFESSIONS:
        n_female = int(round(per_profession * PROFESSIONS[prof][4]))
        for i in range(per_profession):
            gender = int(i < n_female)
            rows.append({"hard_text": _bio(rng, prof, gender), "profession": prof,
                         "gender": gender})
    rng.shuffle(rows)
    return rows


def _amazon_split(rng: random.Random, per_cell: int) -> list[dict]:
    rows = []
    for cat in sorted(AMAZON_CATEGORIES):
        for rating in (1.0, 5.0):
            for _ in range(per_cell):
                rows.append({"text": _review(rng, cat, rating), "category": cat,
                             "rating": rating})
    rng.shuffle(rows)
    return rows


# ----------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------


def _build_tokenizer(texts: list[str], out: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials,
                                                             min_frequency=1))
    bos_id = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", add_bos_token=True, padding_side="left",
        model_max_length=1_000_000)
    fast.save_pretrained(str(out))
    # reload exactly as the model loader will, so training sees the same tokenizer
    return AutoTokenizer.from_pretrained(str(out), add_bos_token=True, padding_side="left")


def _token_chunks(tokenizer, texts: list[str], seq_len: int):
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


def _hooked_config_dict(sizes: dict, d_vocab: int, seed: int) -> dict:
    return {
        "model_name": MODEL_NAME,
        "n_layers": sizes["n_layers"],
        "d_model": sizes["d_model"],
        "n_heads": sizes["n_heads"],
        "d_head": sizes["d_model"] // sizes["n_heads"],
        "d_mlp": sizes["d_mlp"],
        "n_ctx": sizes["n_ctx"],
        "d_vocab": d_vocab,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "seed": seed,
    }


def build_hooked_transformer(cfg_dict: dict, tokenizer=None):
    """Instantiate a (randomly initialised) HookedTransformer from a saved config dict."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(**cfg_dict, device="cpu")
    return HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left")


def _train_lm(model, chunks, sizes: dict, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    n_val = max(4, len(chunks) // 20)
    perm = torch.randperm(len(chunks), generator=g)
    val, train = chunks[perm[:n_val]], chunks[perm[n_val:]]
    steps, bs = sizes["lm_steps"], sizes["lm_batch_size"]
    opt = torch.optim.AdamW(model.parameters(), lr=sizes["lm_lr"], weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(train), (bs,), generator=g)
        loss = model(train[idx], return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        val_loss = float(torch.stack([model(val[i: i + 16], return_type="loss")
                                      for i in range(0, len(val), 16)]).mean())
    tail = losses[-max(1, steps // 10):]
    return {"lm_train_loss": float(sum(tail) / len(tail)), "lm_val_loss": val_loss,
            "lm_initial_loss": float(losses[0]) if losses else float("nan")}


def _collect_acts(model, chunks, hook_name: str, n_seqs: int):
    import torch

    acts = []
    with torch.no_grad():
        for i in range(0, min(n_seqs, len(chunks)), 32):
            _, cache = model.run_with_cache(chunks[i: i + 32], names_filter=[hook_name],
                                            stop_at_layer=int(hook_name.split(".")[1]) + 1)
            acts.append(cache[hook_name][:, 1:].reshape(-1, model.cfg.d_model))  # drop <bos>
    return torch.cat(acts)


def _train_sae(acts, d_sae: int, sizes: dict, seed: int) -> tuple[dict, dict]:
    """ReLU SAE, dictionary_learning StandardTrainer style: f = relu(W_e(x - b) + b_e),
    x_hat = W_d f + b, unit-norm decoder columns, L1 penalty on f."""
    import torch

    g = torch.Generator().manual_seed(seed + 2)
    d_in = acts.shape[1]
    perm = torch.randperm(len(acts), generator=g)
    n_val = max(256, len(acts) // 10)
    val, train = acts[perm[:n_val]], acts[perm[n_val:]]
    scale = float(train.norm(dim=-1).mean())  # train in normalised units, store in raw units
    xs = train / scale

    W_dec = torch.randn(d_in, d_sae, generator=g)
    W_dec = W_dec / W_dec.norm(dim=0, keepdim=True)
    W_dec = torch.nn.Parameter(W_dec)
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(d_sae))
    b_dec = torch.nn.Parameter(xs.mean(0).clone())
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=sizes["sae_lr"])
    steps, bs, l1 = sizes["sae_steps"], sizes["sae_batch_size"], sizes["sae_l1_coeff"]
    warm = max(1, steps // 20)
    for step in range(steps):
        x = xs[torch.randint(0, len(xs), (bs,), generator=g)]
        f = torch.relu((x - b_dec) @ W_enc.t() + b_enc)
        x_hat = f @ W_dec.t() + b_dec
        l1_now = l1 * min(1.0, (step + 1) / warm)
        loss = (x - x_hat).pow(2).sum(-1).mean() + l1_now * f.sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=0, keepdim=True)
        if step == int(steps * 0.8):
            for pg in opt.param_groups:
                pg["lr"] = sizes["sae_lr"] * 0.2

    with torch.no_grad():
        state = {
            "encoder.weight": W_enc.detach().clone().contiguous(),          # (d_sae, d_in)
            "encoder.bias": b_enc.detach().clone().contiguous(),            # (d_sae,)
            "decoder.weight": W_dec.detach().clone().contiguous(),          # (d_in, d_sae)
            "bias": (b_dec.detach() * scale).clone().contiguous(),          # (d_in,)
        }
        # Trained on x / s. With f_raw = s * f:  f_raw = relu(W_e (x - s b) + s b_e) and
        # x_hat = W_d f_raw + s b, so only the biases carry the scale (decoder stays unit norm).
        state["encoder.bias"] *= scale
        metrics = _sae_metrics(state, val)
    return state, metrics


def _sae_metrics(state: dict, x) -> dict:
    import torch

    with torch.no_grad():
        f = torch.relu((x - state["bias"]) @ state["encoder.weight"].t() + state["encoder.bias"])
        x_hat = f @ state["decoder.weight"].t() + state["bias"]
        resid = (x - x_hat).pow(2).sum(-1).sum()
        total = (x - x.mean(0)).pow(2).sum(-1).sum()
        return {"sae_explained_variance": float(1 - resid / total),
                "sae_l0": float((f > 0).float().sum(-1).mean()),
                "sae_dead_fraction": float(((f > 0).sum(0) == 0).float().mean())}


def build_demo_assets(out_dir: str | Path, seed: int = 42, threads: int | None = 1,
                      **sizes: Any) -> dict:
    """Build the demo under ``out_dir`` and return the manifest (also written to manifest.json).

    ``sizes`` overrides entries of ``DEFAULT_SIZES`` (e.g. ``lm_steps=50`` for a quick smoke build).
    ``threads``: torch intra-op threads while building (restored afterwards); ``None`` keeps
    torch's default. One thread is the default because the model is tiny: on the shared 2-core
    machine, 2 threads ran a training step 10-20x slower than 1 whenever other jobs were busy
    (OpenMP threads waiting on each other), and about as fast as 1 when idle.
    """
    import torch

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    # bitwise reproducible on CPU (otherwise threaded reductions drift in the last bits)
    torch.use_deterministic_algorithms(True)
    try:
        return _build(out_dir, seed, sizes)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def _build(out_dir: str | Path, seed: int, sizes: dict) -> dict:
    import torch
    from safetensors.torch import save_file

    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown size keys: {sorted(unknown)}")
    sz = {**DEFAULT_SIZES, **sizes}
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {}

    # ---- text ------------------------------------------------------------------------------
    rng = random.Random(seed)
    docs = [_corpus_doc(rng) for _ in range(sz["n_corpus_docs"])]
    shard = math.ceil(len(docs) / sz["n_corpus_shards"])
    corpus_dir = out / "corpus"
    for i in range(sz["n_corpus_shards"]):
        _write_jsonl(corpus_dir / f"train-{i:05d}.jsonl",
                     [{"text": d} for d in docs[i * shard: (i + 1) * shard]])

    ds_rng = random.Random(seed + 1000)
    bios_dir = out / "datasets" / BIAS_IN_BIOS_SET1
    bios = {"train": _bios_split(ds_rng, sz["bios_train_per_profession"]),
            "test": _bios_split(ds_rng, sz["bios_test_per_profession"])}
    for split, rows in bios.items():
        _write_jsonl(bios_dir / f"{split}.jsonl", rows)
    amazon_dir = out / "datasets" / AMAZON
    amazon = {"train": _amazon_split(ds_rng, sz["amazon_train_per_cell"]),
              "test": _amazon_split(ds_rng, sz["amazon_test_per_cell"])}
    for split, rows in amazon.items():
        _write_jsonl(amazon_dir / f"{split}.jsonl", rows)
    timings["text_s"] = time.time() - t0

    # ---- tokenizer ---------------------------------------------------------------------------
    tok_texts = docs + [r["hard_text"] for r in bios["train"] + bios["test"]] + \
        [r["text"] for r in amazon["train"] + amazon["test"]]
    tokenizer = _build_tokenizer(tok_texts, out / "tokenizer")
    chunks, n_corpus_tokens = _token_chunks(tokenizer, docs, sz["lm_seq_len"])
    timings["tokenizer_s"] = time.time() - t0 - sum(timings.values())

    # ---- language model ----------------------------------------------------------------------
    torch.manual_seed(seed)
    cfg_dict = _hooked_config_dict(sz, len(tokenizer), seed)
    model = build_hooked_transformer(cfg_dict, tokenizer)
    lm_metrics = _train_lm(model, chunks, sz, seed)
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(model_dir / "model.safetensors"))
    with open(model_dir / "config.json", "w") as f:
        json.dump({"hooked_transformer_config": cfg_dict, "tokenizer_path": "../tokenizer"},
                  f, indent=2)
    timings["lm_s"] = time.time() - t0 - sum(timings.values())

    # ---- SAE -----------------------------------------------------------------------------------
    hook_layer = sz["n_layers"] - 1
    hook_name = f"blocks.{hook_layer}.hook_resid_post"
    d_model, d_sae = sz["d_model"], sz["d_model"] * sz["sae_expansion"]
    acts = _collect_acts(model, chunks, hook_name, sz["sae_act_seqs"])
    torch.manual_seed(seed)
    sae_state, sae_metrics = _train_sae(acts, d_sae, sz, seed)
    sae_dir = out / "sae"
    sae_dir.mkdir(parents=True, exist_ok=True)
    torch.save(sae_state, sae_dir / "ae.pt")
    n_sae_tokens = int(sz["sae_steps"] * sz["sae_batch_size"])
    sae_config = {
        "trainer": {
            "trainer_class": "StandardTrainer",
            "dict_class": "AutoEncoder",
            "activation_dim": d_model,
            "dict_size": d_sae,
            "layer": hook_layer,
            "lm_name": MODEL_NAME,
            "submodule_name": f"resid_post_layer_{hook_layer}",
            "lr": sz["sae_lr"],
            "l1_penalty": sz["sae_l1_coeff"],
            "steps": sz["sae_steps"],
            "seed": seed,
            "device": "cpu",
        },
        "buffer": {"d_submodule": d_model, "ctx_len": sz["lm_seq_len"],
                   "refresh_batch_size": 32, "out_batch_size": sz["sae_batch_size"],
                   "device": "cpu"},
        "training_tokens": n_sae_tokens,
    }
    with open(sae_dir / "config.json", "w") as f:
        json.dump(sae_config, f, indent=2)
    timings["sae_s"] = time.time() - t0 - sum(timings.values())

    manifest = {
        "model_name": MODEL_NAME,
        "seed": seed,
        "hook_layer": hook_layer,
        "hook_name": hook_name,
        "d_model": d_model,
        "d_sae": d_sae,
        "context_size": sz["lm_seq_len"],
        "vocab_size": len(tokenizer),
        "paths": {
            "root": str(out),
            "corpus": str(corpus_dir),
            "tokenizer": str(out / "tokenizer"),
            "model": str(model_dir),
            "sae": str(sae_dir),
            "sae_weights": str(sae_dir / "ae.pt"),
            "sae_config": str(sae_dir / "config.json"),
        },
        # SAE-Bench-facing dataset names -> local folder with {train,test}.jsonl
        "datasets": {
            BIAS_IN_BIOS: str(bios_dir),
            BIAS_IN_BIOS_SET1: str(bios_dir),
            AMAZON: str(amazon_dir),
        },
        "corpus_docs": len(docs),
        "corpus_tokens": n_corpus_tokens,
        "bios_rows": {k: len(v) for k, v in bios.items()},
        "bios_professions": BIOS_PROFESSIONS,
        "sae_training_tokens": n_sae_tokens,
        **lm_metrics,
        **sae_metrics,
        "sizes": sz,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    manifest["timings_s"]["total_s"] = round(time.time() - t0, 2)
    with open(out / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Build the local SAE Bench demo (corpus, tokenizer, tiny LM, baseline SAE, "
                    "stand-in datasets) deterministically from a seed.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while building (default 1; 0 keeps torch's default)")
    p.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a size, e.g. lm_steps=100 (keys: {', '.join(DEFAULT_SIZES)})")
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in DEFAULT_SIZES:
            p.error(f"unknown size key {key!r}")
        overrides[key] = type(DEFAULT_SIZES[key])(value)
    manifest = build_demo_assets(args.out, seed=args.seed, threads=args.threads or None,
                                 **overrides)
    print(json.dumps({k: v for k, v in manifest.items() if k != "sizes"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
