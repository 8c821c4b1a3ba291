"""A user's command for run-job (`python SCRIPT.py ARGS` or `python -m PKG.MOD ARGS`),
checked against the project folder before anything is shipped or started.

`python` is a word, not a path: every node runs its own job environment's interpreter.
A module must be the project's own (under the project root or its src/), because that is
what ships; anything else would only be found, or not, on the nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from minicluster.launcher.files import ShipError

PYTHON_WORD = re.compile(r"^python(3(\.\d+)?)?$")
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# Where a project's modules are importable from on the nodes (see receive.pth_files).
IMPORT_ROOTS = (".", "src")


class CommandError(ShipError):
    """The command cannot run: one line, exit status 2."""


@dataclass(frozen=True)
class UserCommand:
    module: str | None  # PKG.MOD for `python -m`
    script: str | None  # path relative to the project root
    args: tuple[str, ...]

    @property
    def target(self) -> list[str]:
        """What follows `python` on the nodes."""
        head = ["-m", self.module] if self.module else [self.script]
        return [*head, *self.args]

    def __str__(self) -> str:
        return " ".join(["python", *self.target])


def _module_file(root: Path, module: str) -> Path | None:
    parts = module.split(".")
    for base in IMPORT_ROOTS:
        where = root / base / Path(*parts)
        for candidate in (where.with_suffix(".py"), where / "__main__.py"):
            if candidate.is_file():
                return candidate
    return None


def parse_command(argv: list[str], root: Path) -> UserCommand:
    """`argv` is everything after `--`; `root` the project folder (already checked)."""
    usage = "expected `-- python SCRIPT.py ARGS...` or `-- python -m PACKAGE.MODULE ARGS...`"
    if not argv:
        raise CommandError(f"no command after --; {usage}")
    if not PYTHON_WORD.match(argv[0]):
        raise CommandError(f"the command must start with python, not {argv[0]!r}; {usage}")
    if len(argv) < 2:
        raise CommandError(f"python needs a script or -m MODULE; {usage}")
    if argv[1] == "-m":
        if len(argv) < 3 or not MODULE_NAME.match(argv[2]):
            raise CommandError(f"-m needs a module name like pkg.mod; {usage}")
        module = argv[2]
        if _module_file(root, module) is None:
            looked = " or ".join(str(root / b) for b in IMPORT_ROOTS)
            raise CommandError(f"no module {module} in {looked}")
        return UserCommand(module=module, script=None, args=tuple(argv[3:]))
    if argv[1].startswith("-"):
        raise CommandError(f"python option {argv[1]!r} is not supported; {usage}")
    script = Path(argv[1])
    path = script if script.is_absolute() else root / script
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise CommandError(f"{argv[1]}: the script must be inside the project folder {root}")
    if not resolved.is_file():
        raise CommandError(f"{argv[1]}: no such script in {root}")
    relative = resolved.relative_to(root.resolve()).as_posix()
    return UserCommand(module=None, script=relative, args=tuple(argv[2:]))
