#!/usr/bin/env bash
# apt-ensure.sh WHO PACKAGE...: installs the Debian packages that are not installed yet (nothing,
# quietly, when all are). WHO prefixes the message. Used by setup.sh and docker-setup.sh.
set -euo pipefail
who=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "$who: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
