"""CI runs exactly what the README tells a newcomer to run: every command line of .ci/run marked
`# README` appears verbatim in README.md, and every command of the README's quick start is one of them."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def readme_marked_commands() -> list[str]:
    commands = []
    for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines():
        if line.rstrip().endswith("# README"):
            command = re.sub(r"\s*\|\|.*$", "", line.split("# README")[0]).strip()
            commands.append(command)
    return commands


def test_ci_runs_the_readme_commands():
    commands = readme_marked_commands()
    # the set-up, the core tests, the demo and both test runs (0.3.75, 0.33.0)
    assert len(commands) == 5, commands
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [command for command in commands if command not in readme]
    assert missing == [], f"README.md does not show these .ci/run commands: {missing}"


def quick_start_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    # A chained line (venv && activate && set-up) is run by .ci/run step by step; its last step is the marked one.
    return [line.split("&&")[-1].strip() for line in lines if line]


def test_every_quick_start_command_runs_in_ci():
    commands = quick_start_commands()
    assert len(commands) >= 4, commands
    missing = [command for command in commands if command not in readme_marked_commands()]
    assert missing == [], f".ci/run does not run these README quick-start commands: {missing}"
