#!/usr/bin/env bash
# test_units: the systemd units meson generates from systemd/*.in (the ones `meson install`
# installs) pass `systemd-analyze verify`, with ExecStart pointed at the binaries of this build.
# Timers are verified together with the services they start. Skipped (77) where systemd-analyze
# is not installed.
set -euo pipefail

build=${PASSPORT_BUILD_ROOT:?run through meson}
bindir=${PASSPORT_BINDIR:?run through meson}
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found"
	exit 77
fi

work=$(mktemp -d /tmp/passport-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
generated=("$build"/systemd/*.service "$build"/systemd/*.timer)
[[ ${#generated[@]} -ge 1 ]] || { echo "FAIL: no units generated in $build/systemd" >&2; exit 1; }
for unit in "${generated[@]}"; do
	name=$(basename "$unit")
	if grep -n '@[a-z_]*@' "$unit" >&2; then
		echo "FAIL: $name has an unsubstituted @variable@" >&2
		exit 1
	fi
	sed -e "s|$bindir/passportd |$build/daemon/passportd |g" \
		-e "s|$bindir/passport-migrate |$build/migrate/passport-migrate |g" "$unit" >"$work/$name"
done
# systemd-analyze runs `man` for each man: page a unit's Documentation= names: point MANPATH at
# the pages of this build when they were built, else skip that check.
man_option=--man=no
if [[ -f "$build/doc/passportd.8" ]]; then
	mkdir -p "$work/man/man5" "$work/man/man8"
	cp "$build"/doc/*.5 "$work/man/man5/"
	cp "$build"/doc/*.8 "$work/man/man8/"
	export MANPATH="$work/man"
	man_option=--man=yes
fi
units=0
for unit in "$work"/*.service "$work"/*.timer; do
	name=$(basename "$unit")
	out=$(cd "$work" && systemd-analyze verify "$man_option" "$unit" 2>&1) || {
		echo "FAIL: $name: $out" >&2
		exit 1
	}
	# verify exits 0 on some warnings; any output about our unit is a finding.
	if grep -F "$name" <<<"$out" >&2; then
		echo "FAIL: systemd-analyze has findings for $name" >&2
		exit 1
	fi
	grep -q '^Type=notify' "$unit" || [[ "$name" != passportd.service ]] || {
		echo "FAIL: passportd.service is not Type=notify" >&2
		exit 1
	}
	# The service: no restart into a bad configuration, a reload that fails when it would be
	# refused, bounded resources, the password as a credential.
	if [[ "$name" == passportd.service ]]; then
		for line in '^RestartPreventExitStatus=78$' '^ExecReload=.*passportd run --check-config$' \
			'^MemoryMax=' '^TasksMax=' '^LoadCredential=pgpass:' '^Environment=PGPASSFILE=%d/pgpass$'; do
			grep -q -- "$line" "$unit" || {
				echo "FAIL: passportd.service has no line matching $line" >&2
				exit 1
			}
		done
	fi
	if [[ "$name" == *.service ]] && ! grep -q "^ExecStart=$build/" "$unit"; then
		echo "FAIL: $name: ExecStart does not start with $bindir/" >&2
		exit 1
	fi
	if [[ "$name" == *.timer ]] && [[ ! -f "$work/${name%.timer}.service" ]]; then
		echo "FAIL: $name has no service of its name" >&2
		exit 1
	fi
	echo "ok: $name"
	units=$((units + 1))
done
echo "PASS test_units ($units units)"
