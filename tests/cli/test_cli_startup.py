"""CLI start-up: ``labelgate --help`` and light commands must not import the heavy stack.

A guard against a top-level import slipping back into the command path: each check runs
the Typer app in a fresh interpreter and reads ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from labelgate.cli._lazy import LAZY_COMMANDS, load_command

#: never needed to print help or to decide on a QA sample
HEAVY = (
    "sqlalchemy",
    "fastapi",
    "matplotlib",
    "scipy",
    "PIL",
    "onnxruntime",
    "cv2",
    "argon2",
    "alembic",
    "labelgate.store",
    "labelgate.workflow",
    "labelgate.api",
    "labelgate.reports",
    "labelgate.ml",
)


def _run(*args: str) -> tuple[int, str, list[str]]:
    """Run the app with ``args`` in a fresh interpreter: exit code, stdout, heavy modules."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from labelgate.cli.app import app
        try:
            app({list(args)!r})
            status = 0
        except SystemExit as exc:
            status = exc.code or 0
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        sys.stderr.write("\\nSTARTUP " + json.dumps([status, heavy]) + "\\n")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("STARTUP ")]
    assert marker, done.stderr
    status, heavy = json.loads(marker[-1].removeprefix("STARTUP "))
    return int(status), done.stdout, heavy


def test_help_imports_nothing_heavy_and_lists_every_command() -> None:
    status, out, heavy = _run("--help")
    assert status == 0
    assert heavy == []
    for name, entry in LAZY_COMMANDS.items():
        assert name in out
        assert entry.help.split()[0] in out


def test_qa_decide_imports_only_what_it_needs() -> None:
    status, out, heavy = _run(
        "qa", "decide", "--sampled", "100", "--defects", "0", "--limit", "0.05",
        "--confidence", "0.95", "--json",
    )  # fmt: skip
    assert status == 0
    # zero defects in 100 at 95 %: the Clopper-Pearson bound is 1 - 0.05 ** (1 / 100)
    result = json.loads(out)
    assert result["decision"] == "release"
    assert result["upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-9)
    assert not {"sqlalchemy", "fastapi", "matplotlib", "labelgate.store"} & set(heavy)


def test_the_help_table_matches_the_commands_it_stands_for() -> None:
    for name, entry in LAZY_COMMANDS.items():
        command = load_command(name, entry)
        assert command.name == name
        own = (command.help or "").split("\n\n")[0].replace("\n", " ").strip()
        assert own == entry.help, (
            f"{name}: its help line changed; set it in LAZY_COMMANDS (labelgate/cli/_lazy.py) "
            f"to {own!r}"
        )


def test_a_lazy_command_runs_like_an_eager_one() -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app

    result = CliRunner().invoke(app, ["qa", "plan", "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_cost_without_a_database_loads_no_database_stack() -> None:
    status, out, heavy = _run("cost", "--units", "1000", "--defect-rate", "0.05", "--json")
    assert status == 0 and json.loads(out)
    assert not {"sqlalchemy", "labelgate.store", "labelgate.workflow"} & set(heavy)
