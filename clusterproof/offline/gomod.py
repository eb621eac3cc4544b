"""Go programs built from the Go module proxy, each from a small wrapper module of ours.

`go install pkg@version` refuses modules whose go.mod has local `replace` lines
(k8s.io/kubernetes replaces its staging modules with ./staging/...; etcd's server module
with ../api and friends). A wrapper module requires the program's module and pins each
replaced module at the matching published version; `go mod tidy` resolves the rest from the
program's own requirements, so the build uses the versions upstream pinned.

Nothing here is fetched but Go modules; nothing fetched is written into the repository.
The module and build caches live under the offline cache and are shared by every release.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clusterproof.errors import ClusterproofError

MIN_GO = (1, 26)
MIN_FREE_BYTES = 10 * 1024**3  # the module cache, the build cache and the binaries of one release
DOWNLOAD_TIMEOUT = 600


class GoBuildError(ClusterproofError):
    """One line: which component, what went wrong, what to do."""


@dataclass(frozen=True)
class GoProgram:
    component: str  # named in every message: "kubernetes v1.37.2"
    module: str  # the module required by the wrapper
    version: str
    packages: tuple[str, ...]  # main packages to build (import paths); empty: the wrapper's own main
    # module -> version (the same module, published), or "other/module version" (a fork)
    replaces: Mapping[str, str] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()  # "module version" lines the upstream go.mod excludes
    # module -> {file: source}: a module of our own, written beside the wrapper and replacing that
    # module by its local path (a nested module upstream replaces locally and never published)
    local_modules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    main_go: str | None = None  # source of the wrapper's own main package
    main_name: str = ""  # the binary built from main_go
    ldflags: str = "-s -w"
    tags: str = ""
    godebug: tuple[str, ...] = ()
    go_directive: str = "1.26.0"


@dataclass(frozen=True)
class GoEnv:
    cache: Path  # the offline cache; Go's caches live below it
    go: str = "go"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GOMODCACHE": str(self.cache / "go" / "mod"),
            "GOCACHE": str(self.cache / "go" / "build"),
            "CGO_ENABLED": "0",
            "GOFLAGS": "-mod=mod -buildvcs=false",
            "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
        }

    def run(self, args: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.go, *args], cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )


def go_version(go: str = "go") -> tuple[int, int] | None:
    """(1, 26) for go1.26.8; None when there is no Go toolchain."""
    if shutil.which(go) is None:
        return None
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, env={**os.environ, "GOTOOLCHAIN": "local"}
    )
    found = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def check_toolchain(component: str, go: str = "go") -> None:
    found = go_version(go)
    if found is None:
        raise GoBuildError(
            f"{component}: no Go toolchain on PATH: install Go {MIN_GO[0]}.{MIN_GO[1]} or newer "
            "(the offline images are built from Go modules)"
        )
    if found < MIN_GO:
        raise GoBuildError(
            f"{component}: Go {found[0]}.{found[1]} is too old: install Go {MIN_GO[0]}.{MIN_GO[1]} or newer"
        )


def first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if any(word in line for word in ("403", "404", "410", "not available", "unknown revision", "no matching")):
            return line
    for line in lines:
        if not line.startswith("go: downloading"):
            return line
    return lines[-1] if lines else "(no output)"


def download(env: GoEnv, component: str, module: str, version: str, workdir: Path) -> Path:
    """`go mod download` one module; its directory in the module cache."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        out = env.run(["mod", "download", "-json", f"{module}@v{version.lstrip('v')}"], workdir, DOWNLOAD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise GoBuildError(
            f"{component}: the Go module proxy did not deliver {module} within {DOWNLOAD_TIMEOUT}s "
            f"(GOPROXY={os.environ.get('GOPROXY') or 'default'})"
        ) from None
    info = json.loads(out.stdout or "{}") if out.stdout.strip().startswith("{") else {}
    if out.returncode != 0 or info.get("Error") or not info.get("Dir"):
        why = info.get("Error") or first_error_line(out.stderr)
        raise GoBuildError(
            f"{component}: the Go module proxy refused {module}@{version}: {why} "
            "(check GOPROXY, or pick a version the proxy serves: `go list -m -versions " + module + "`)"
        )
    return Path(info["Dir"])


def local_replaces(go_mod: str) -> list[str]:
    """Modules a go.mod replaces with local paths (`k8s.io/api => ./staging/src/k8s.io/api`)."""
    found = []
    for line in go_mod.splitlines():
        line = line.strip()
        if line.startswith("replace "):
            line = line[len("replace ") :].strip()
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith(("./", "../")):
            found.append(parts[0].split()[0])
    return found


def module_replaces(go_mod: str) -> dict[str, str]:
    """Replacements of a go.mod by other published modules (`github.com/gorilla/mux =>
    github.com/containous/mux v0.0.0-...`): {left side: "module version"}. A wrapper module must
    repeat them: replace lines of a dependency's go.mod are ignored."""
    found = {}
    for line in _directive_lines(go_mod, "replace"):
        left, arrow, right = line.partition("=>")
        target = right.split()
        if arrow and len(target) == 2 and not target[0].startswith(("./", "../")):
            found[" ".join(left.split())] = " ".join(target)
    return found


def module_excludes(go_mod: str) -> tuple[str, ...]:
    """`exclude` lines of a go.mod ("module version"): like replaces, only the main module's count."""
    return tuple(" ".join(line.split()) for line in _directive_lines(go_mod, "exclude") if len(line.split()) == 2)


def required_version(go_mod: str, module: str) -> str | None:
    """The version a go.mod requires of `module` (None: not required)."""
    for line in _directive_lines(go_mod, "require"):
        parts = line.split()
        if len(parts) == 2 and parts[0] == module:
            return parts[1]
    return None


def _directive_lines(go_mod: str, verb: str) -> list[str]:
    """The bodies of `verb ...` lines and of `verb ( ... )` blocks, comments removed."""
    found, block = [], False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if block:
            if line == ")":
                block = False
            elif line:
                found.append(line)
        elif line == f"{verb} (":
            block = True
        elif line.startswith(f"{verb} "):
            found.append(line[len(verb) + 1 :].strip())
    return found


def directives(go_mod: str) -> tuple[str, tuple[str, ...]]:
    """The `go` version and the `godebug` lines of a go.mod."""
    go = re.search(r"^go (\S+)", go_mod, re.M)
    godebug = tuple(m.group(0) for m in re.finditer(r"^godebug .+$", go_mod, re.M))
    return (go.group(1) if go else "1.26.0"), godebug


def wrapper_files(program: GoProgram) -> dict[str, str]:
    """go.mod and the Go source of the wrapper module."""
    lines = [f"module clusterproof.local/build/{_slug(program.component)}", "", f"go {program.go_directive}", ""]
    lines += [*program.godebug, ""] if program.godebug else []
    lines += [f"require {program.module} v{program.version.lstrip('v')}", ""]
    replaced = {**program.replaces, **{mod: f"./{_local_dir(mod)}" for mod in program.local_modules}}
    if replaced:
        lines.append("replace (")
        lines += [f"\t{mod} => {_target(mod, ver)}" for mod, ver in sorted(replaced.items())]
        lines.append(")")
    if program.excludes:
        lines += ["", "exclude (", *(f"\t{line}" for line in program.excludes), ")"]
    files = {"go.mod": "\n".join(lines) + "\n"}
    for mod, sources in program.local_modules.items():
        files.update({f"{_local_dir(mod)}/{name}": text for name, text in sources.items()})
    if program.main_go is not None:
        files["main.go"] = program.main_go
    if program.packages:
        imports = "\n".join(f'\t_ "{p}"' for p in program.packages)
        files["tools.go"] = f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"
    return files


def build(
    env: GoEnv, program: GoProgram, out: Path, workdir: Path, log: Callable[[str], None] = print
) -> dict[str, float]:
    """Build the program's binaries into `out`; returns seconds per binary."""
    check_toolchain(program.component, env.go)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in wrapper_files(program).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    log(f"{program.component}: resolving modules (go mod tidy)")
    try:
        tidy = env.run(["mod", "tidy"], workdir, DOWNLOAD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise GoBuildError(
            f"{program.component}: go mod tidy took over {DOWNLOAD_TIMEOUT}s (a slow module proxy?)"
        ) from None
    if tidy.returncode != 0:
        raise GoBuildError(f"{program.component}: resolving its modules failed: {first_error_line(tidy.stderr)}")
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    targets = [(p.rsplit("/", 1)[-1], p) for p in program.packages]
    if program.main_go is not None:
        targets.append((program.main_name, "."))
    for name, pkg in targets:
        started = time.monotonic()
        log(f"{program.component}: go build {pkg}")
        args = ["build", "-trimpath", "-ldflags", program.ldflags, "-o", str(out / name)]
        if program.tags:
            args += ["-tags", program.tags]
        done = env.run([*args, pkg], workdir)
        if done.returncode != 0:
            raise GoBuildError(
                f"{program.component}: {pkg} does not build with {_go_version_text(env)}: "
                f"{first_error_line(done.stderr)}"
            )
        seconds[name] = time.monotonic() - started
    return seconds


def version_ldflags(packages: tuple[str, ...], values: Mapping[str, str]) -> str:
    flags = ["-s", "-w"]
    for pkg in packages:
        flags += [f"-X {pkg}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _target(module: str, version: str) -> str:
    """The right side of a replace: the same module at `version`, "other/module version", or a local path."""
    return version if " " in version or version.startswith("./") else f"{module} {version}"


def _local_dir(module: str) -> str:
    return f"local/{_slug(module)}"


def _go_version_text(env: GoEnv) -> str:
    found = go_version(env.go)
    return f"Go {found[0]}.{found[1]}" if found else "this Go"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
