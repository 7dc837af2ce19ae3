#!/usr/bin/env bash
# B-1: every built-in framework exported as an OSCAL catalog must parse with an independent
# OSCAL implementation, the pydantic models of IBM's compliance-trestle (PyPI).
# Run from the repository root. Idempotent: the Python environment is cached under
# target/ci-cache and the exported files are rewritten each run.
set -euo pipefail

TRESTLE_VERSION="${TRESTLE_VERSION:-3.12.4}"
CACHE="${ASSAY_CI_CACHE:-target/ci-cache}"
VENV="$CACHE/trestle-${TRESTLE_VERSION}-venv"
OUT="$CACHE/oscal-export"

if [[ ! -f Cargo.toml || ! -d crates/core ]]; then
  echo "run this from the repository root" >&2
  exit 2
fi

mkdir -p "$CACHE"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import trestle' 2>/dev/null; then
  echo "== installing compliance-trestle ${TRESTLE_VERSION} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "compliance-trestle==${TRESTLE_VERSION}"
fi

echo "== exporting built-in frameworks as OSCAL catalogs to $OUT"
rm -rf "$OUT"
cargo run --quiet -p assay-core --example export_oscal -- "$OUT"

echo "== validating with trestle ${TRESTLE_VERSION}"
"$VENV/bin/python" - "$OUT" <<'PY'
import pathlib
import sys

from trestle.oscal.catalog import Catalog

folder = pathlib.Path(sys.argv[1])
files = sorted(folder.glob("*.oscal.json"))
if not files:
    sys.exit(f"no exported catalogs in {folder}")
failed = 0
for path in files:
    try:
        catalog = Catalog.oscal_read(path)
        if catalog is None:
            raise ValueError("trestle read nothing")
        controls = 0
        stack = list(catalog.groups or []) + list(catalog.controls or [])
        while stack:
            node = stack.pop()
            if type(node).__name__ == "Control":
                controls += 1
            stack.extend(getattr(node, "groups", None) or [])
            stack.extend(getattr(node, "controls", None) or [])
        print(f"ok {path.name}: {len(catalog.groups or [])} top-level groups, {controls} controls")
    except Exception as error:  # report every file, then fail
        failed += 1
        print(f"FAILED {path.name}: {error}")
if failed:
    sys.exit(f"{failed} of {len(files)} exported catalogs are not valid OSCAL")
print(f"all {len(files)} exported catalogs are valid OSCAL according to compliance-trestle")
PY
