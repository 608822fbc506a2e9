"""docs/benchmarks.md holds a section per benchmark and database; each run replaces its own."""

from __future__ import annotations

from pathlib import Path


def write_sections(output: Path, sections: dict[str, str]) -> None:
    """Replace the sections with these headings (or append them); keep every other one."""
    text = output.read_text() if output.exists() else "# Benchmarks\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip("\n") + "\n"]
    for part in parts[1:]:
        if f"## {part.splitlines()[0]}" not in sections:
            kept.append("## " + part.rstrip("\n") + "\n")
    kept += [section.rstrip("\n") + "\n" for section in sections.values()]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(kept))
