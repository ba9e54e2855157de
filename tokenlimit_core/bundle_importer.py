"""The import hook a bundled filter file carries: it serves the embedded core modules as a package.

`bundle.py` copies this module's code (without this docstring) into each file under
`filters/` and calls `_install(...)`; it is also importable here so it can be tested.
Embedded data files (e.g. the redis store's Lua scripts) are served to
`importlib.resources`.
"""
import importlib.abc as _abc
import importlib.util as _util
import io as _io
import linecache as _linecache
import sys as _sys

try:
    from importlib.resources.abc import Traversable as _Traversable
except ImportError:  # Python < 3.11
    from importlib.abc import Traversable as _Traversable


class _EmbeddedFile(_Traversable):
    """One embedded data file (or the folder of them) for importlib.resources."""

    def __init__(self, folder, name, files):
        self._folder, self._name, self._files = folder, name, files

    @property
    def name(self):
        return self._name or self._folder

    def iterdir(self):
        if self._name:
            return iter(())
        return iter(_EmbeddedFile(self._folder, n, self._files) for n in sorted(self._files))

    def is_dir(self):
        return not self._name

    def is_file(self):
        return bool(self._name) and self._name in self._files

    def joinpath(self, *parts):
        return _EmbeddedFile(self._folder, "/".join(str(p) for p in parts), self._files)

    def __truediv__(self, child):
        return self.joinpath(child)

    def open(self, mode="r", *args, **kwargs):
        if not self.is_file():
            raise FileNotFoundError(f"{self._folder}/{self._name} is not in this bundle")
        data = self._files[self._name].encode("utf-8")
        return _io.BytesIO(data) if "b" in mode else _io.TextIOWrapper(_io.BytesIO(data), *args, **kwargs)


class _EmbeddedReader:
    def __init__(self, folder, files):
        self._root = _EmbeddedFile(folder, "", files)

    def files(self):
        return self._root


class _BundleImporter(_abc.MetaPathFinder, _abc.Loader):
    """Finds and loads `<package>` and `<package>.<module>` from embedded source text."""

    def __init__(self, package, sources, packages, resources):
        self.package, self.sources, self.packages, self.resources = package, sources, packages, resources

    def _relative(self, fullname):
        if fullname == self.package:
            return ""
        if fullname.startswith(self.package + "."):
            return fullname[len(self.package) + 1:]
        return None

    def find_spec(self, fullname, path=None, target=None):
        relative = self._relative(fullname)
        if relative is None or relative not in self.sources:
            return None
        return _util.spec_from_loader(fullname, self, is_package=relative in self.packages)

    def create_module(self, spec):
        return None

    def get_source(self, fullname):
        return self.sources[self._relative(fullname)]

    def get_resource_reader(self, fullname):
        relative = self._relative(fullname)
        return _EmbeddedReader(relative or "", self.resources.get(relative, {}))

    def exec_module(self, module):
        relative = self._relative(module.__name__)
        source = self.sources[relative]
        filename = f"<{self.package}/{relative.replace('.', '/') or '__init__'}.py>"
        _linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), module.__dict__)


def _install(package, sources, packages, resources):
    """Register the embedded package once per process (a re-loaded file with the same content reuses it)."""
    if not any(getattr(f, "package", None) == package for f in _sys.meta_path):
        _sys.meta_path.insert(0, _BundleImporter(package, sources, packages, resources))
