"""The layers of README's "Layout", read from the source: no module imports from one above it.

Each module's imports (top-level and inside functions, `import x` and `from x import y`) are read
with `ast`, so an import added anywhere in a module is caught, not only at its top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules_of(folder: str, *, leave_out: tuple[str, ...] = ()) -> list[Path]:
    """The app's own modules: not its tests, not its migrations (they name other apps' tables)."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/tests/" in relative or "/migrations/" in relative or relative in leave_out:
            continue
        found.append(path)
    return found


def offending(folder: str, forbidden: tuple[str, ...], *, leave_out: tuple[str, ...] = ()) -> list[str]:
    wrong = []
    for path in modules_of(folder, leave_out=leave_out):
        for name in sorted(imported_modules(path)):
            if any(name == top or name.startswith(top + ".") for top in forbidden):
                wrong.append(f"{path.relative_to(ROOT).as_posix()} imports {name}")
    return wrong


@pytest.mark.parametrize("folder, forbidden, leave_out", [
    # avatars is below tutors and sessions: it announces (avatars/signals.py) and never imports them.
    ("avatars", ("tutors", "sessions_app", "webhooks.receivers", "tutorplatform"), ()),
    ("avatars/pipeline", ("django", "rest_framework", "channels", "avatars.models", "common"), ()),
    # tutors builds on avatars; sessions build on tutors.
    ("tutors", ("sessions_app", "webhooks.receivers", "tutorplatform"), ()),
    ("sessions_app", ("webhooks.receivers", "tutorplatform"), ()),
    ("sessions_app/speech", ("django", "rest_framework", "channels"), ()),
    # webhooks: only its receivers read the apps' signals; the rest is below the apps.
    ("webhooks", ("avatars", "tutors", "sessions_app", "tutorplatform"), ("webhooks/receivers.py",)),
    ("common", ("avatars", "tutors", "sessions_app", "webhooks", "tutorplatform"), ()),
])
def test_no_module_imports_from_a_layer_above_it(folder, forbidden, leave_out):
    assert offending(folder, forbidden, leave_out=leave_out) == []


def test_the_check_reads_imports_inside_functions_too(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def late():\n    from tutors.models import Tutor\n    import sessions_app.services\n")
    assert {"tutors.models", "tutors.models.Tutor", "sessions_app.services"} <= imported_modules(module)
