"""Secrets (API keys) come from environment variables and are kept out of every log line:
each one read through here is remembered, and `redact` masks it wherever it appears.

Text that leaves a process (a log line, a Status message, a control answer) is masked first
and cut after. A secret is masked however it is echoed: its ASCII letters in either case,
URL-encoded (%2B, %2b), with whitespace between its characters (in groups), and in part: any
PIECE characters of it or more (what a cut before masking left of it, `frame[:80]`, or an echo
of its last characters). A secret shorter than PIECE is masked whole.

Fast on text that holds no secret (every log line goes through here): the text's bytes,
URL-decoded, lower-cased (ASCII) and without whitespace, are cut into chunks of 4 (half a
piece: a piece covers one whole chunk wherever it is), and only if one of them is in a secret
too (a set lookup each) does the text go through the regex of the set of secrets (compiled
then, once): a trie of every piece of every secret, that finds an echo's first piece; the rest
of the echo, as far as it goes on matching its secret, is masked with it.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from array import array
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

PLACEHOLDER_CREDENTIAL = "tickmesh-demo"
"""Sent when a credential's variable is unset: the simulators accept any credentials."""
MASK = "***"
PIECE = 8
"""The fewest characters of a secret that are masked on their own."""
_WHITESPACE = b" \t\n\r\f\v"
_SEPARATOR = r"[ \t\n\r\f\v]*"
"""What may come between two characters of an echoed secret: ASCII whitespace."""
_CHUNKS = {4: "I", 2: "H", 1: "B"}
"""Chunk sizes, largest first, and the array type code that cuts bytes into them."""

_secrets: frozenset[str] = frozenset()
_masker: Masker | None = None  # for _secrets; None: to be made at the next redact
_lock = threading.Lock()


def secret_from_env(variable: str, default: str = "") -> str:
    """Read a secret from the environment and make sure no log line ever shows it."""
    global _secrets, _masker
    value = os.environ.get(variable, default)
    if value and value not in _secrets:
        with _lock:
            _secrets, _masker = _secrets | {value}, None
    return value


def credential(variable: str) -> str:
    """The secret in `variable`, or the placeholder if it is unset (the caller says so)."""
    return secret_from_env(variable) or PLACEHOLDER_CREDENTIAL


def redact(text: str) -> str:
    """`text` with every echo of every known secret masked (see the module's docstring)."""
    return _current()(text)


def may_hold_secret(text: str) -> bool:
    """Whether `text` may hold an echo of a known secret. False is sure (and quickly known),
    and true of every part of `text` too: a log line's values are looked at joined."""
    return _current().may_hold_one(text)


def _current() -> Masker:
    global _masker
    masker = _masker
    if masker is None:
        with _lock:
            masker = _masker = _masker or Masker(_secrets)
    return masker


@dataclass
class _Node:
    """A trie node: the pieces that go on (by their next character's _key), and the
    pieces that end here: (secret, where in it the piece ends)."""

    children: dict[str, _Node] = field(default_factory=dict)
    ends: list[tuple[str, int]] = field(default_factory=list)


class Masker:
    """Masks the echoes of one set of secrets."""

    def __init__(self, secrets: frozenset[str]) -> None:
        self._secrets = secrets
        self._piece = min((min(PIECE, len(secret)) for secret in secrets), default=PIECE)
        self._size = next(size for size in _CHUNKS if 2 * size - 1 <= self._piece)
        plains = [_plain(secret) for secret in secrets]
        self._grams = frozenset(int.from_bytes(plain[at:at + self._size], sys.byteorder)
                                for plain in plains for at in range(len(plain) - self._size + 1))
        # a secret with whitespace or a %XX in it is not itself in _plain form: no shortcut
        self._always = any(plain != secret.encode().lower() for plain, secret
                           in zip(plains, secrets))
        self._regex: _Regex | None = None
        self._lock = threading.Lock()

    def __call__(self, text: str) -> str:
        if not self.may_hold_one(text):
            return text
        if self._regex is None:
            with self._lock:
                self._regex = self._regex or _Regex(self._secrets)
        return self._regex.mask(text)

    def may_hold_one(self, text: str) -> bool:
        """False if `text` surely holds no echo (most texts: one set lookup a chunk)."""
        if not self._secrets or len(text) < self._piece:
            return False
        if self._always:
            return True
        plain = _plain(text)
        chunks = array(_CHUNKS[self._size], plain + bytes(-len(plain) % self._size))
        return not self._grams.isdisjoint(chunks)


class _Regex:
    """The regex of every piece of a set of secrets, and what masks their echoes with it."""

    def __init__(self, secrets: frozenset[str]) -> None:
        root = _Node()
        for secret in secrets:
            length = min(PIECE, len(secret))
            for start in range(len(secret) - length + 1):
                _add(root, secret, start, start + length)
        self._ends: list[list[tuple[str, int]]] = [[]]  # by group number; group 0 ends none
        self._search = re.compile("|".join(_char(key) + self._rest(child)
                                           for key, child in root.children.items())).search
        self._next = {_key(char): re.compile(_SEPARATOR + _char(_key(char))).match
                      for secret in secrets for char in secret}

    def mask(self, text: str) -> str:
        found = self._search(text)
        kept, at = [], 0
        while found is not None:
            kept += text[at:found.start()], MASK
            at = self._end(text, found)
            found = self._search(text, at)
        kept.append(text[at:])
        return "".join(kept)

    def _end(self, text: str, found: re.Match[str]) -> int:
        """Where the echo whose first piece was `found` ends: the longest of the secrets that
        piece is of, each matched on as far as it goes."""
        ends = []
        for secret, offset in self._ends[found.lastindex]:
            at = found.end()
            for char in secret[offset:]:
                going_on = self._next[_key(char)](text, at)
                if going_on is None:
                    break
                at = going_on.end()
            ends.append(at)
        return max(ends, default=found.end())

    def _rest(self, node: _Node) -> str:
        """The regex of what follows `node`: its children, else its end (an empty group, whose
        number says which pieces end there)."""
        branches = [_SEPARATOR + _char(key) + self._rest(child)
                    for key, child in node.children.items()]
        if node.ends:
            self._ends.append(node.ends)
            branches.append("()")
        return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


def _add(root: _Node, secret: str, start: int, end: int) -> None:
    node = root
    for char in secret[start:end]:
        node = node.children.setdefault(_key(char), _Node())
    node.ends.append((secret, end))


def _plain(text: str) -> bytes:
    """`text`'s bytes URL-decoded, lower-cased and without whitespace: an echo of a secret in
    it is the secret's own (lower-cased) bytes, one after the other."""
    return unquote_to_bytes(text).lower().translate(None, _WHITESPACE)


def _key(char: str) -> str:
    """A character of a secret as the trie knows it: lower-cased if it is ASCII."""
    return char.lower() if char.isascii() else char


def _char(key: str) -> str:
    """The regex of one character of a secret, in any of its forms."""
    return f"(?:{'|'.join(_forms(key))})"


def _forms(key: str) -> list[str]:
    """The regexes of a character as it may be echoed: in either case (an ASCII letter),
    URL-encoded (its UTF-8 bytes, each %XX with either case of hex digits) and as itself."""
    cases = sorted({key, key.upper()}) if key.isascii() else [key]
    itself = f"[{''.join(map(re.escape, cases))}]"
    encoded = ["".join(f"%{_hex(byte)}" for byte in case.encode()) for case in cases]
    return [*encoded, itself]  # "%25" before "%": the longest echo


def _hex(byte: int) -> str:
    return "".join(f"[{digit}{digit.lower()}]" if digit.isalpha() else digit
                   for digit in f"{byte:02X}")
