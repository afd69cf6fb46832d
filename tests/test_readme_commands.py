"""CI runs exactly what the README tells a newcomer to run: every command line of .ci/run marked
`# README` appears verbatim in README.md."""

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
    # the set-up and both test runs (0.3.75, 0.33.0)
    assert len(commands) == 3, commands
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [command for command in commands if command not in readme]
    assert missing == [], f"README.md does not show these .ci/run commands: {missing}"
