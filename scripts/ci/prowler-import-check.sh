#!/usr/bin/env bash
# Real data no one here wrote (issue 4, R-21): download a pinned Prowler release from PyPI,
# unpack its compliance/ folder and import every JSON in it with Assay's Prowler importer;
# each must import without error and with as many requirements as the file lists.
# Run from the repository root. Idempotent: downloads are cached under target/ci-cache.
set -euo pipefail

PROWLER_VERSION="${PROWLER_VERSION:-5.46.0}"
CACHE="${ASSAY_CI_CACHE:-target/ci-cache}/prowler-${PROWLER_VERSION}"

if [[ ! -f Cargo.toml || ! -d crates/core ]]; then
  echo "run this from the repository root" >&2
  exit 2
fi

mkdir -p "$CACHE"
if ! ls "$CACHE"/prowler-"${PROWLER_VERSION}"-*.whl >/dev/null 2>&1; then
  echo "== downloading prowler ${PROWLER_VERSION} from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "prowler==${PROWLER_VERSION}" -d "$CACHE"
fi
WHEEL=$(ls "$CACHE"/prowler-"${PROWLER_VERSION}"-*.whl | head -n1)

# Unpack afresh each run so a partial earlier unpack can never be read.
UNPACKED="$CACHE/unpacked"
rm -rf "$UNPACKED"
python3 -m zipfile -e "$WHEEL" "$UNPACKED"
COMPLIANCE="$UNPACKED/prowler/compliance"
if [[ ! -d "$COMPLIANCE" ]]; then
  echo "no prowler/compliance folder in $WHEEL" >&2
  exit 1
fi
COUNT=$(find "$COMPLIANCE" -name '*.json' | wc -l)
echo "== importing $COUNT compliance files from $(basename "$WHEEL")"

ASSAY_PROWLER_COMPLIANCE_DIR="$(cd "$COMPLIANCE" && pwd)" \
  cargo test -p assay-core --test prowler_compliance_folder -- --ignored --nocapture

echo "== prowler ${PROWLER_VERSION}: all $COUNT compliance files imported with matching requirement counts"
