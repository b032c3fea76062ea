"""Write docs/cli.md from the `vnvs` command's own options (run after changing a command or a config)."""

from pathlib import Path

from vnvs.cli import reference_markdown

HEADER = """# Command-line reference

Every option of every `vnvs` subcommand, with its meaning and default. Generated from the commands
themselves (their config dataclasses: `DemoConfig`, `RenderConfig`, `EvalConfig`, `PrepareRun` and
`PrepareConfig`, and the parsers of `trajectory` and `train`) by `python scripts/write_cli_doc.py`;
a test fails when this file is out of date. An option has one meaning wherever it appears.

"""


def text() -> str:
    return HEADER + reference_markdown()


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    path.write_text(text())
    print(f"wrote {path}")
