#!/usr/bin/env bash
# test_install: `meson install --destdir` of this build installs exactly the expected files (the
# binaries, the units with the configured paths, the example configuration under sysconfdir, the
# man pages when scdoc built them, sql/, the README and the examples), and the installed
# passportd runs.
set -euo pipefail

build=${PASSPORT_BUILD_ROOT:?run through meson}
root=${PASSPORT_SOURCE_ROOT:?run through meson}
: "${PREFIX:?}" "${BINDIR:?}" "${SYSCONFDIR:?}" "${DATADIR:?}" "${DOCDIR:?}" "${MANDIR:?}" "${MAN_PAGES:?}"
UNITDIR=${UNITDIR:-}

work=$(mktemp -d /tmp/passport-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/dest"

if ! meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$work/install.log" 2>&1; then
	cat "$work/install.log" >&2
	echo "FAIL: meson install failed" >&2
	exit 1
fi

{
	echo "$BINDIR/passportd"
	echo "$BINDIR/passport-migrate"
	echo "$SYSCONFDIR/passportd/passportd.conf"
	echo "$DOCDIR/README.md"
	echo "$DOCDIR/examples/passportd.env.example"
	echo "$DOCDIR/examples/passport-migrate.env.example"
	echo "$DOCDIR/examples/passportd-alerts.yml"
	for file in "$root"/sql/*.sql; do
		echo "$DATADIR/passport/sql/$(basename "$file")"
	done
	if [[ -n "$UNITDIR" ]]; then
		for unit in "$root"/systemd/*.in; do
			name=$(basename "$unit" .in)
			echo "$UNITDIR/$name"
		done
	fi
	if [[ "$MAN_PAGES" == true ]]; then
		echo "$MANDIR/man8/passportd.8"
		echo "$MANDIR/man8/passport-migrate.8"
		echo "$MANDIR/man5/passportd.conf.5"
	fi
} | sort >"$work/expected"
(cd "$dest" && find . -type f -o -type l) | sed 's|^\.||' | sort >"$work/installed"
if ! diff -u "$work/expected" "$work/installed" >&2; then
	echo "FAIL: the installed files differ from the expected list (- expected, + installed)" >&2
	exit 1
fi

for program in passportd passport-migrate; do
	[[ -x "$dest$BINDIR/$program" ]] || { echo "FAIL: $BINDIR/$program is not executable" >&2; exit 1; }
done
version=$("$dest$BINDIR/passportd" --version)
[[ "$version" == "passportd "*"(git "*"libpq "*"sd_notify "*"BLAS "* ]] || {
	echo "FAIL: unexpected --version line: $version" >&2
	exit 1
}

# The units name the installed paths, not the build tree's nor a hard-coded /usr/local.
if [[ -n "$UNITDIR" ]]; then
	grep -q "^ExecStart=$BINDIR/passportd run\$" "$dest$UNITDIR/passportd.service" || {
		echo "FAIL: passportd.service does not start $BINDIR/passportd" >&2
		exit 1
	}
	if grep -l "$build\|@[a-z_]*@" "$dest$UNITDIR"/* >&2; then
		echo "FAIL: installed units name the build tree or an unsubstituted variable" >&2
		exit 1
	fi
	grep -q "^EnvironmentFile=-$SYSCONFDIR/passportd/passportd.env\$" "$dest$UNITDIR/passportd.service" || {
		echo "FAIL: passportd.service does not read $SYSCONFDIR/passportd/passportd.env" >&2
		exit 1
	}
fi
cmp -s "$root/systemd/passportd.conf" "$dest$SYSCONFDIR/passportd/passportd.conf" || {
	echo "FAIL: the installed passportd.conf is not systemd/passportd.conf" >&2
	exit 1
}
echo "installed $(wc -l <"$work/installed") files; $version"
echo "PASS test_install"
