#!/usr/bin/env bash
# test_units: the systemd units pass `systemd-analyze verify` (with ExecStart pointed at the
# binaries of this build). Skipped (77) where systemd-analyze is not installed.
set -euo pipefail

root=${PASSPORT_SOURCE_ROOT:?run through meson}
build=${PASSPORT_BUILD_ROOT:?run through meson}
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found"
	exit 77
fi

work=$(mktemp -d /tmp/passport-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
units=0
for unit in "$root"/systemd/*.service; do
	name=$(basename "$unit")
	sed -e "s|/usr/local/bin/passportd|$build/daemon/passportd|g" \
		-e "s|/usr/local/bin/passport-migrate|$build/migrate/passport-migrate|g" "$unit" >"$work/$name"
	out=$(systemd-analyze verify "$work/$name" 2>&1) || {
		echo "FAIL: $name: $out" >&2
		exit 1
	}
	# verify exits 0 on some warnings; any output about our unit is a finding.
	if grep -F "$name" <<<"$out" >&2; then
		echo "FAIL: systemd-analyze has findings for $name" >&2
		exit 1
	fi
	grep -q '^Type=notify' "$work/$name" || [[ "$name" != passportd.service ]] || {
		echo "FAIL: passportd.service is not Type=notify" >&2
		exit 1
	}
	echo "ok: $name"
	units=$((units + 1))
done
[[ $units -ge 1 ]] || { echo "FAIL: no units found" >&2; exit 1; }
echo "PASS test_units ($units units)"
