"""The tokenizer the released LISA weights were trained with, rebuilt exactly.

LISA pins transformers 4.31 and its slow sentencepiece `LlamaTokenizer`
(`legacy=True`). That tokenizer

* splits the text on added and special tokens,
* strips the whitespace on both sides of each *added* token that is not in the
  special-tokens map (`<im_start>`, `<im_end>`, `<im_patch>`, `[SEG]`), so the
  space before `<im_start>` and the newline after `<im_end>` vanish,
* encodes every remaining text chunk on its own with sentencepiece, which gives
  each chunk a dummy-prefix `▁`.

Current transformers releases tokenise the same files differently, so the
weights would see sequences they were never trained on. This class reproduces
the 4.31 behaviour from `tokenizer.model` + `added_tokens.json` with the
sentencepiece library alone, and token ids always come from the files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import sentencepiece as spm

SPECIAL_TOKENS_MAP = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


class LisaTokenizer:
    def __init__(self, model_file: str | Path, added_tokens: dict[str, int] | None = None) -> None:
        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise FileNotFoundError(f"sentencepiece model not found: {self.model_file}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        self.added_tokens: dict[str, int] = dict(added_tokens or {})
        base = self.sp.get_piece_size()
        for token, idx in self.added_tokens.items():
            if idx < base:
                raise ValueError(
                    f"added token {token!r} has id {idx}, inside the base vocabulary of {base}"
                )
        self._added_by_id = {idx: tok for tok, idx in self.added_tokens.items()}
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        self.pad_id = self.unk_id  # LISA pads with <unk>
        specials = {
            self.sp.id_to_piece(i): i for i in (self.bos_id, self.eos_id, self.unk_id) if i >= 0
        }
        self._specials = specials
        # Longest first so that no token is split by a shorter one it contains.
        pieces = sorted(list(self.added_tokens) + list(specials), key=len, reverse=True)
        self._split_re = (
            re.compile("(" + "|".join(re.escape(p) for p in pieces) + ")") if pieces else None
        )

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The sentencepiece control pieces (``<s>``, ``</s>``, ``<unk>``)."""
        return tuple(self._specials)

    @classmethod
    def from_dir(cls, path: str | Path) -> LisaTokenizer:
        path = Path(path)
        model_file = path / "tokenizer.model"
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{path} has no tokenizer.model (the sentencepiece model of the LLM)"
            )
        added_file = path / "added_tokens.json"
        added = json.loads(added_file.read_text()) if added_file.is_file() else {}
        return cls(model_file, {str(k): int(v) for k, v in added.items()})

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.model_file, path / "tokenizer.model")
        (path / "added_tokens.json").write_text(json.dumps(self.added_tokens, indent=2) + "\n")
        (path / "special_tokens_map.json").write_text(
            json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n"
        )

    def __len__(self) -> int:
        return self.sp.get_piece_size() + len(self.added_tokens)

    def token_to_id(self, token: str) -> int:
        """Id of a whole token (like `convert_tokens_to_ids`): `[SEG]` is one token, never tokenised."""
        if token in self.added_tokens:
            return self.added_tokens[token]
        idx = self.sp.piece_to_id(token)
        if idx == self.unk_id and token != self.sp.id_to_piece(self.unk_id):
            raise KeyError(f"token {token!r} is not in the vocabulary")
        return idx

    def split(self, text: str) -> list[str]:
        """Text chunks and whole tokens, with the whitespace around added tokens stripped."""
        parts = [p for p in self._split_re.split(text)] if self._split_re else [text]
        for i, part in enumerate(parts):
            if part in self.added_tokens:
                if i > 0:
                    parts[i - 1] = parts[i - 1].rstrip()
                if i + 1 < len(parts):
                    parts[i + 1] = parts[i + 1].lstrip()
        return [p for p in parts if p]

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids: list[int] = [self.bos_id] if add_bos else []
        for part in self.split(text):
            if part in self.added_tokens:
                ids.append(self.added_tokens[part])
            elif part in self._specials:
                ids.append(self._specials[part])
            else:
                ids.extend(self.sp.encode(part))
        return ids

    def pieces(self, ids: list[int]) -> list[str]:
        return [self._added_by_id.get(i) or self.sp.id_to_piece(i) for i in ids]

    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in self._added_by_id:
                if run:
                    out.append(self.sp.decode(run))
                    run = []
                out.append(self._added_by_id[i])
            elif skip_special and i in (self.bos_id, self.eos_id, self.pad_id):
                continue
            else:
                run.append(i)
        if run:
            out.append(self.sp.decode(run))
        return " ".join(s.strip() for s in out if s.strip())
