"""splitbrain's Python fallback: a module the test's Python does not have comes from the slave.

The bridge (`--python-fallback`) writes this file, and `slave-path.json` beside it, into a
directory the test's PYTHONPATH starts with; Python's `site` imports it at start. It then:

- runs the image's own sitecustomize, if the image has one (site imports only the first on
  sys.path, which is this one), and takes this directory off sys.path again;
- appends a finder to the end of sys.meta_path that looks for a top-level module on the
  slave's own sys.path, as the test sees it through the mount (`slave-path.json`). Every finder
  of the test's own Python comes first, so what the image has is always what is imported; a
  package found on the slave brings its submodules from there too (its __path__ is there);
- makes native code that does not fit this Python fail as Python's own ImportError does, with a
  message naming the slave path it came from.

Nothing in the image is changed. The standard library only: this runs in any test image.
"""
import importlib.abc
import importlib.machinery
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_image_sitecustomize():
    ours = sys.modules.pop("sitecustomize", None)
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if os.path.abspath(p or os.curdir) != _HERE]
    try:
        import sitecustomize  # noqa: F401  (the image's own, found now that ours is off the path)
    except ModuleNotFoundError as err:
        if err.name != "sitecustomize":
            raise
    finally:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
    # The test sees its own sys.path, without this directory.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


class _SlaveExtensionLoader(importlib.machinery.ExtensionFileLoader):
    """Native code from the slave: a failure to load it names where it came from."""

    def __init__(self, name, path, slave_path):
        super().__init__(name, path)
        self.slave_path = slave_path

    def create_module(self, spec):
        try:
            return super().create_module(spec)
        except ImportError as err:
            raise ImportError(
                "%s (native code from the slave's %s, built for the slave's Python)" % (err, self.slave_path),
                name=spec.name, path=self.path) from err


class SlaveFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules on the slave's sys.path, seen through the mount."""

    def __init__(self, entries):
        self.entries = entries  # [(path as the test sees it, path on the slave)]
        self.seen = [seen for seen, _ in entries]
        self._listings = {}

    def _slave_path(self, path):
        for seen, slave in self.entries:
            if path == seen or path.startswith(seen.rstrip("/") + "/"):
                return slave + path[len(seen):]
        return path

    def _listing(self, directory):
        if directory not in self._listings:
            try:
                self._listings[directory] = os.listdir(directory)
            except OSError:
                self._listings[directory] = []
        return self._listings[directory]

    def _foreign_native(self, name):
        """A native module `name` on the slave built for another Python (its suffix is not ours)."""
        ours = {name + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES}
        for seen, slave in self.entries:
            for entry in self._listing(seen):
                if entry.startswith(name + ".") and entry.endswith((".so", ".pyd")) and entry not in ours:
                    return os.path.join(slave, entry)
        return None

    def find_spec(self, name, path=None, target=None):
        if path is not None:
            return None  # a submodule: its package's __path__ decides
        spec = importlib.machinery.PathFinder.find_spec(name, self.seen, target)
        if spec is None:
            foreign = self._foreign_native(name)
            if foreign is not None:
                raise ImportError(
                    "No module named %r for this Python: the slave's %s is native code built for another Python"
                    % (name, foreign), name=name, path=foreign)
            return None
        if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) and spec.origin:
            spec.loader = _SlaveExtensionLoader(name, spec.origin, self._slave_path(spec.origin))
        return spec


def _install():
    with open(os.path.join(_HERE, "slave-path.json"), encoding="utf-8") as f:
        entries = [(seen, slave) for seen, slave in json.load(f)["paths"]]
    sys.meta_path.append(SlaveFinder(entries))


_run_image_sitecustomize()
try:
    _install()
except OSError:
    pass  # no slave path written (yet): the test's Python is left as it is
