"""The one tokenizer of text inputs: a written-down rule and a vocabulary, so an app reproduces the ids exactly.

The rule is MediaPipe Model Maker's for its average-word-embedding text
classifier (`AverageWordEmbeddingClassifierPreprocessor` in
`mediapipe/model_maker/python/text/text_classifier/preprocessor.py`), the
one MediaPipe Tasks' `TextClassifier` applies from a model's LiteRT metadata
(a regex tokenizer and a vocabulary file):

1. strip leading and trailing whitespace; the case is kept (`lowercase`
   False), as MediaPipe's regex tokenizer keeps it: a model whose words were
   lower-cased in training would see "Great" as unknown in an app, where
   kerasflow would see "great" (MediaPipe Tasks 1.2.3's TextClassifier gave
   different scores for a capitalised word, `tests/model/test_mobile_clients.py`);
   tokenizers saved with `lowercase` True lower-case first, as before;
2. split it on the regular expression `[^\\w']+` (Python's `re`, Unicode `\\w`);
   empty pieces are dropped;
3. each token's id is its index in `vocabulary`, `<UNKNOWN>` (2) if absent;
4. `<START>` (1) goes first, then the tokens' ids; the sequence is cut at
   `length` or padded at the end with `<PAD>` (0) to `length`.

The vocabulary is `<PAD>`, `<START>`, `<UNKNOWN>` and then the `MAX_WORDS`
most frequent tokens of the training texts, most frequent first (ties in order
of first appearance: `collections.Counter.most_common`), exactly as Model
Maker's vocabulary file lists them. The length covers `LENGTH_PERCENTILE`% of
the training texts (their tokens plus `<START>`), between `MIN_LENGTH` and
`MAX_LENGTH` (Model Maker's fixed `seq_len` is 256). Ids are int32.
"""

from __future__ import annotations

import collections
import math
import re
import zlib
from dataclasses import asdict, dataclass

import numpy as np

SPLIT_PATTERN = r"[^\w']+"
PAD, START, UNKNOWN = "<PAD>", "<START>", "<UNKNOWN>"
SPECIAL_TOKENS = (PAD, START, UNKNOWN)  # ids 0, 1, 2
PAD_ID, START_ID, UNKNOWN_ID = 0, 1, 2
FIRST_WORD_ID = len(SPECIAL_TOKENS)
MAX_WORDS = 10_000  # Model Maker's default vocabulary size
LENGTH_PERCENTILE = 95
MIN_LENGTH = 8
MAX_LENGTH = 256
RULE = ("strip (case kept); split on the regular expression [^\\w']+ and drop empty pieces; id = index in vocabulary, "
        "2 (<UNKNOWN>) if absent; prepend 1 (<START>); cut at length or pad at the end with 0 (<PAD>); int32")
_SPLIT = re.compile(SPLIT_PATTERN)


LOWERCASE_RULE = "lowercase; " + RULE.replace(" (case kept)", "")  # the rule of tokenizers saved before


def tokens(text, lowercase: bool = False) -> list[str]:
    """The rule's tokens of one text (an empty or missing value has none)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    text = str(text)
    return [t for t in _SPLIT.split((text.lower() if lowercase else text).strip()) if t]


@dataclass
class Tokenizer:
    """`vocabulary` (id = index) and `length`; `rule`, `split_pattern` and `lowercase` say how text becomes tokens."""

    vocabulary: list[str]
    length: int
    split_pattern: str = SPLIT_PATTERN
    lowercase: bool = False
    rule: str = RULE

    @classmethod
    def fit(cls, texts, max_words: int = MAX_WORDS) -> "Tokenizer":
        """The vocabulary and length of `texts` (the training split's)."""
        counts: collections.Counter = collections.Counter()
        lengths = []
        for text in texts:
            found = tokens(text)
            counts.update(found)
            lengths.append(len(found) + 1)
        words = [word for word, _ in counts.most_common(max_words)]
        covered = math.ceil(float(np.percentile(lengths, LENGTH_PERCENTILE))) if lengths else MIN_LENGTH
        return cls([*SPECIAL_TOKENS, *words], int(min(MAX_LENGTH, max(MIN_LENGTH, covered))))

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts) -> np.ndarray:
        """int32 [len(texts), length] ids of `texts` under the rule."""
        index = {word: i for i, word in enumerate(self.vocabulary)}
        ids = np.full((len(texts), self.length), PAD_ID, dtype=np.int32)
        for row, text in enumerate(texts):
            found = [START_ID, *(index.get(t, UNKNOWN_ID) for t in tokens(text, self.lowercase))][:self.length]
            ids[row, :len(found)] = found
        return ids

    def unknown_shares(self, texts, counted: HeldOut | None = None, counted_rows: int = 0) -> np.ndarray:
        """Per text, the share of its tokens outside the vocabulary (NaN for a text without tokens).

        The first `counted_rows` texts are among those the vocabulary was
        counted from (`counted`): each of them has the share a vocabulary
        counted without it would leave unknown (`HeldOut.unknown`), the
        share a new text of the same kind shows. Their plain share is lower
        (every word they hold was counted): a drift reference made of it
        flags every later batch of texts as drifted.
        """
        known = set(self.vocabulary[FIRST_WORD_ID:])
        shares = np.full(len(texts), np.nan)
        for row, text in enumerate(texts):
            found = tokens(text, self.lowercase)
            if not found:
                continue
            if counted is not None and row < counted_rows:
                own = collections.Counter(found)
                shares[row] = sum(counted.unknown(t, own[t]) for t in found) / len(found)
            else:
                shares[row] = sum(t not in known for t in found) / len(found)
        return shares

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, saved: dict) -> "Tokenizer":
        lowercase = saved.get("lowercase", True)  # saved before the field: lower-cased
        return cls(**{**saved, "lowercase": lowercase, "rule": saved.get("rule", LOWERCASE_RULE if lowercase else RULE)})


@dataclass
class HeldOut:
    """Which words a vocabulary would lack, counted as `Tokenizer.fit` counts but without one of its texts.

    A word stays when its count without that text keeps it among the
    `MAX_WORDS` most frequent: above `floor` (the count of the vocabulary's
    rarest words) it does, below it does not. At the floor the vocabulary
    keeps `kept_share` of the words (`fit` takes them in order of first
    appearance); which ones is decided by a hash of the word, a stand-in for
    that order that makes each word's answer fixed and the kept share right.
    """

    counts: collections.Counter
    floor: int
    kept_share: float

    @classmethod
    def of(cls, tokenizer: Tokenizer, texts) -> "HeldOut":
        """The counts of `texts`, those `tokenizer` was fitted on."""
        counts = collections.Counter(t for text in texts for t in tokens(text, tokenizer.lowercase))
        words = tokenizer.vocabulary[FIRST_WORD_ID:]
        if len(counts) <= len(words) or not words:  # every word kept: one occurrence is enough
            return cls(counts, 1, 1.0)
        floor = min(counts[word] for word in words)
        at_floor = sum(count == floor for count in counts.values())
        return cls(counts, floor, sum(counts[word] == floor for word in words) / at_floor)

    def unknown(self, word: str, own: int) -> bool:
        """Whether a text holding `word` `own` times would find it unknown without its own count."""
        left = self.counts[word] - own
        if left != self.floor:
            return left < self.floor
        return zlib.crc32(word.encode()) / 2 ** 32 >= self.kept_share
