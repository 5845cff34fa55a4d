"""docs/products.md, generated from specs/products.toml by ``creditflow docs``."""

from __future__ import annotations

from pathlib import Path

from engine.products.specs import SPECS_DIR, ProductSpec, load_products

__all__ = ["PRODUCTS_DOC", "render_products_doc", "table_cell", "write_doc", "write_products_doc"]

PRODUCTS_DOC = SPECS_DIR.parent / "docs" / "products.md"


def table_cell(text: str) -> str:
    """``text`` as one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def _product(spec: ProductSpec) -> list[str]:
    lines = [f"## {spec.name_zh} / {spec.name_en}", ""]
    lines.append(f"`{spec.id}`: {len(spec.segments)} segments, {len(spec.items)} items.")
    lines.append("")
    for number, segment in enumerate(spec.segments, start=1):
        lines.append(f"### {number}. {segment.name_zh} / {segment.name_en} (`{segment.id}`)")
        lines.append("")
        lines.append("| id | 名称 | name | unit | definition | formula | null when |")
        lines.append("|---|---|---|---|---|---|---|")
        for item in segment.items:
            lines.append(
                f"| `{item.id}` | {item.name_zh} | {item.name_en} | {item.unit.value} | "
                f"{table_cell(item.definition)} | `{table_cell(item.formula)}` | "
                f"{table_cell(item.null_when)} |"
            )
        lines.append("")
    return lines


def render_products_doc() -> str:
    products = load_products()
    first = next(iter(products.values()))
    lines = [
        "# The credit products",
        "",
        "Generated from [`specs/products.toml`](../specs/products.toml) by `creditflow docs`;",
        "do not edit by hand. The vocabulary of the formulas is explained at the top of that",
        f"file. Spec version {first.version}.",
        "",
        "Parameters: " + ", ".join(f"`{k}` = {v}" for k, v in first.parameters.items()) + ".",
        "",
    ]
    for spec in products.values():
        lines.extend(_product(spec))
    return "\n".join(lines).rstrip() + "\n"


def write_doc(path: Path, text: str) -> Path:
    """Write a generated document (``creditflow docs``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_products_doc(path: Path = PRODUCTS_DOC) -> Path:
    return write_doc(path, render_products_doc())
