"""YAML texts as an attacker with a pull request (or a push to status/) writes them:
small files that ask the loader for unbounded depth, memory or time (issue 12)."""

from __future__ import annotations


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """`levels` anchors, each a list of `width` aliases of the one before: under a
    kilobyte that expands to width**levels values ("billion laughs")."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def deep_sequence(depth: int = 10_000) -> str:
    """`a: [[[...]]]`, `depth` sequences inside one another: 20 KB at 10,000."""
    return "a: " + "[" * depth + "]" * depth + "\n"


def deep_mapping(depth: int = 3_000) -> str:
    """`a: {a: {...}}`, `depth` flow mappings inside one another."""
    return "a: " + "{a: " * depth + "b" + "}" * depth + "\n"


def deep_block_mapping(depth: int) -> str:
    """`depth` block mappings, each indented one column more than its parent."""
    return "".join(" " * level + "a:\n" for level in range(depth)) + " " * depth + "b\n"
