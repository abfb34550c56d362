"""Build hook: the wheel carries the migrations, example tenants and JSON Schemas (ADR 0034).

They stay where their tools read them in the repository (`supabase/migrations` for the Supabase CLI,
`tenants.d/` and `schemas/` for editors); `build_py` copies them into `mirage/_bundle/` of the build, and
`mirage.resources` finds them in either place. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# bundle name -> (folder in the repository, files to take); keep in step with mirage/resources.py SOURCES
BUNDLE = {
    "migrations": ("supabase/migrations", "*.sql"),
    "tenants.d": ("tenants.d", "**/*"),
    "schemas": ("schemas", "*.schema.json"),
}


class BuildWithBundle(build_py):
    """build_py, then copy the bundled folders next to the package modules."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        for name, (source, pattern) in BUNDLE.items():
            base = ROOT / source
            if not base.is_dir():
                raise SystemExit(f"setup.py: {source}/ is missing; cannot build a wheel without it")
            for path in sorted(p for p in base.glob(pattern) if p.is_file()):
                target = Path(self.build_lib) / "mirage" / "_bundle" / name / path.relative_to(base)
                self.mkpath(str(target.parent))
                self.copy_file(str(path), str(target))


setup(cmdclass={"build_py": BuildWithBundle})
