"""Loading a repository of files by name as the manifest cache does: a file whose text
did not change keeps the very objects it loaded last (source/cache.py), which is what
the engine's memos and values made from the last pass key on."""

from __future__ import annotations

from reconciler.loader import LoadResult, load_text

Loaded = dict[str, tuple[str, LoadResult]]


def load_keeping(texts: dict[str, str], last: Loaded) -> tuple[LoadResult, Loaded]:
    """The revision of `texts`, and what to keep for the next load."""
    result = LoadResult()
    loaded: Loaded = {}
    for name in sorted(texts):
        text = texts[name]
        cached = last.get(name)
        one = cached[1] if cached and cached[0] == text else load_text(text, name)
        loaded[name] = (text, one)
        result.extend(one)
    return result, loaded
