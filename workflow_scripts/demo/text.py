"""The demo's synthetic text: a corpus, bias_in_bios-like biographies and amazon-like reviews.

Word lists and sentence templates live in `language.yaml`; this module only draws from them with
one `random.Random`, so a seed fixes every text. Biographies carry the profession and gender
signals SAE Bench's probing, SCR and TPP evals look for; the corpus mixes them with reviews and
generic sentences (including "<word> has the first letter : <L> ." for absorption).
"""

from __future__ import annotations

import json
import random
import string
from functools import cache
from pathlib import Path

LANGUAGE = Path(__file__).resolve().parent / "language.yaml"
FACT_DOCS_UNTIL = 0.8  # corpus documents with r in [0.6, this) are RAVEL facts


@cache
def language() -> dict:
    """language.yaml, with the derived lists `any_name` and `letter_word` added."""
    import yaml

    data = yaml.safe_load(LANGUAGE.read_text())
    lists = data["lists"]
    lists["any_name"] = lists["male_name"] + lists["female_name"]
    lists["letter_word"] = sorted(
        {word for name in data["letter_word_lists"] for word in lists[name]}
    )
    return data


def fill(template: str, rng: random.Random, lists: dict, fixed: dict | None = None) -> str:
    """Fill `template`'s fields left to right: a value of `fixed`, else a pick from `lists`, else
    (capitalised field) a capitalised pick. Raises KeyError naming an unknown field."""
    fixed = fixed or {}
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        if field in fixed:
            out.append(str(fixed[field]))
        elif field in lists:
            out.append(rng.choice(lists[field]))
        elif field[:1].lower() + field[1:] in lists:
            out.append(rng.choice(lists[field[:1].lower() + field[1:]]).capitalize())
        else:
            raise KeyError(f"template field {{{field}}} is neither fixed nor a list: {template!r}")
    return "".join(out)


def professions() -> list[int]:
    """bias_in_bios profession ids the demo writes biographies for, sorted."""
    return sorted(language()["professions"])


def bio(rng: random.Random, prof: int, gender: int) -> str:
    """One biography of profession `prof` (bias_in_bios id) and gender (0 male, 1 female)."""
    lang = language()
    job, words = lang["professions"][prof], lang["gender"][gender]
    templates = lang["templates"]
    lists = {
        **lang["lists"],
        "noun": job["noun"],
        "verb_phrase": job["verb_phrase"],
        "family": words["family"],
    }
    first, last = rng.choice(lang["lists"][words["names"]]), rng.choice(lang["lists"]["surname"])
    fixed = {
        **{k: v for k, v in words.items() if isinstance(v, str)},
        "first": first,
        "last": last,
        "title": job["title"],
        "field": job["field"],
        "article": "an" if job["title"][0] in "aeiou" else "a",
    }
    opening_template = templates["bio_opening"][0 if rng.random() < 0.6 else 1]
    opening = fill(opening_template, rng, lists, fixed)
    domain = [fill(t, rng, lists, fixed) for t in templates["bio_domain"]]
    personal = [fill(t, rng, lists, fixed) for t in templates["bio_personal"]]
    rng.shuffle(domain)
    rng.shuffle(personal)
    body = domain[: rng.randint(3, 4)] + personal[: rng.randint(1, 2)]
    rng.shuffle(body)
    return " ".join([opening] + body)


def generic_sentence(rng: random.Random) -> str:
    lang = language()
    template = lang["templates"]["generic"][rng.randrange(len(lang["templates"]["generic"]))]
    fixed = {}
    if "{letter_word}" in template:  # the word and its first letter are one pick
        word = rng.choice(lang["lists"]["letter_word"])
        fixed = {"letter_word": word, "initial": word[0].upper()}
    return fill(template, rng, lang["lists"], fixed)


def review(rng: random.Random, category: int, rating: float) -> str:
    """One review of an amazon category (id) with rating 1.0 or 5.0."""
    lang = language()
    item = rng.choice(lang["amazon_categories"][category])
    lists = {**lang["lists"], "sentiment": lang["lists"]["good" if rating > 3 else "bad"]}
    return fill(lang["templates"]["review"], rng, lists, {"item": item})


def fact_sentence(rng: random.Random, entity_type: str, entity: str, attribute: str) -> str:
    """One RAVEL fact: a template of `attribute` filled with `entity`, then its value."""
    table = language()["ravel"][entity_type]
    template = rng.choice(table["templates"][attribute])["template"]
    value = table["entities"][entity][table["attributes"].index(attribute)]
    return f"{template % entity} {value} ."


def fact_doc(rng: random.Random, entity_type: str = "city") -> str:
    """A few facts (2-3 attributes each) about 1-3 entities of `entity_type`."""
    table = language()["ravel"][entity_type]
    sentences = []
    for entity in rng.sample(sorted(table["entities"]), rng.randint(1, 3)):
        attributes = rng.sample(table["attributes"], rng.randint(2, len(table["attributes"])))
        sentences += [fact_sentence(rng, entity_type, entity, a) for a in attributes]
    return " ".join(sentences)


def ravel_files(entity_type: str = "city") -> dict[str, dict]:
    """The four files of adamkarvonen/ravel_prompts for `entity_type`, by file name, in its schema
    (read by sae_bench/evals/ravel/instance.py ~load_files): attribute -> templates, template ->
    context split, entity -> {attribute: value}, entity -> split (every other entity is "val")."""
    table = language()["ravel"][entity_type]
    entities = sorted(table["entities"])
    return {
        f"ravel_{entity_type}_attribute_to_prompts.json": {
            a: [t["template"] for t in table["templates"][a]] for a in table["attributes"]
        },
        f"ravel_{entity_type}_prompt_to_split.json": {
            t["template"]: t["split"] for a in table["attributes"] for t in table["templates"][a]
        },
        f"ravel_{entity_type}_entity_attributes.json": {
            e: dict(zip(table["attributes"], table["entities"][e], strict=True)) for e in entities
        },
        f"ravel_{entity_type}_entity_to_split.json": {
            e: ("train", "val")[i % 2] for i, e in enumerate(entities)
        },
    }


def corpus_doc(rng: random.Random) -> str:
    """A corpus document: half biographies, a tenth reviews, a fifth RAVEL facts about cities,
    the rest generic sentences."""
    lang = language()
    r = rng.random()
    if r < 0.5:
        prof = rng.choice(professions())
        gender = int(rng.random() < lang["professions"][prof]["female_fraction"])
        return bio(rng, prof, gender)
    if r < 0.6:
        category = rng.choice(sorted(lang["amazon_categories"]))
        return review(rng, category, rng.choice([1.0, 5.0]))
    if r < FACT_DOCS_UNTIL:
        return fact_doc(rng)
    return " ".join(generic_sentence(rng) for _ in range(rng.randint(3, 7)))


def bios_split(rng: random.Random, per_profession: int) -> list[dict]:
    """bias_in_bios rows (`hard_text`, `profession`, `gender`), shuffled."""
    lang = language()
    rows = []
    for prof in professions():
        n_female = int(round(per_profession * lang["professions"][prof]["female_fraction"]))
        for i in range(per_profession):
            gender = int(i < n_female)
            rows.append({"hard_text": bio(rng, prof, gender), "profession": prof, "gender": gender})
    rng.shuffle(rows)
    return rows


def amazon_split(rng: random.Random, per_cell: int) -> list[dict]:
    """amazon_reviews_mcauley_1and5 rows (`text`, `category`, `rating`), shuffled."""
    rows = []
    for category in sorted(language()["amazon_categories"]):
        for rating in (1.0, 5.0):
            for _ in range(per_cell):
                rows.append(
                    {"text": review(rng, category, rating), "category": category, "rating": rating}
                )
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
