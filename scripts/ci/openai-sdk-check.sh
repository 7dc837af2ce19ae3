#!/usr/bin/env bash
# B-4: the official `openai` Python package (pinned, from PyPI) talks to Assay's
# OpenAI-compatible endpoint exactly as it talks to OpenAI. Builds the real `assay` and
# `mock-llm` binaries (debug), installs the SDK into a venv under target/ci-cache, then
# scripts/ci/openai_sdk_check.py starts mock-llm and `assay serve` (SQLite in a temp dir, the
# mock as the only provider), creates a person, an organisation and API keys over HTTP, and
# drives /v1 with openai.OpenAI(base_url=..., api_key=...): model list, a complete and a
# streamed completion (content, usage), a named model, a `length` finish, and the typed SDK
# exceptions for a blocked injection, a missing scope, a bad key, an unknown model, the
# per-key rate limit, a stream the provider drops mid-way and an unknown /v1 path.
# Run from the repository root. Idempotent: the venv is reused when the version matches.
set -euo pipefail

OPENAI_SDK_VERSION="${OPENAI_SDK_VERSION:-3.57.0}"
VENV="${ASSAY_CI_CACHE:-target/ci-cache}/openai-sdk-${OPENAI_SDK_VERSION}"

if [[ ! -f Cargo.toml || ! -d crates/api ]]; then
  echo "run this from the repository root" >&2
  exit 2
fi

echo "== building assay and mock-llm (debug)"
cargo build --quiet -p assay -p mock-llm --bins

if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '${OPENAI_SDK_VERSION}')" 2>/dev/null; then
  echo "== installing openai ${OPENAI_SDK_VERSION} from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "openai==${OPENAI_SDK_VERSION}"
fi

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
"$VENV/bin/python" scripts/ci/openai_sdk_check.py \
  --assay "$TARGET_DIR/debug/assay" \
  --mock-llm "$TARGET_DIR/debug/mock-llm"
