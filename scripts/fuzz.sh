#!/usr/bin/env bash
# The long form of the agent fuzz test (test/integration/hostile-input.test.ts): a real agent on
# a real nats-server fed MESSAGES hostile messages (default 1,000,000; CI runs 100,000). Builds
# first if dist/ is missing or older than the sources. Prints the seed; give it as SEED to replay
# a failing run exactly.
#
#   bash scripts/fuzz.sh [MESSAGES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
seed="${2:-}"
test_js=dist/test/integration/hostile-input.test.js
if [[ ! -f "$test_js" ]] || [[ -n "$(find agent protocol transport cli test -name '*.ts' -newer "$test_js" -print -quit)" ]]; then
  npm run build
fi
export SPLITBRAIN_FUZZ_MESSAGES="$messages"
if [[ -n "$seed" ]]; then export SPLITBRAIN_FUZZ_SEED="$seed"; fi
exec node --test --test-concurrency=1 --test-reporter=spec "$test_js"
