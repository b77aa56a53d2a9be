#!/usr/bin/env bash
# start.sh: start the pgvector test server (PGlite + pgvector, in memory) on 127.0.0.1:PORT.
#
# Usage: tests/pgvector/start.sh PORT [LOGFILE]
#
# Installs the pinned npm packages into tests/pgvector/node_modules first when they are missing or
# stale (npm ci, under a lock so parallel callers install once), starts `node server.mjs PORT` in
# the background, waits until it accepts connections, and prints the server's PID as its only
# line on stdout. Stop the server with `kill PID`. Connect with
#   host=127.0.0.1 port=PORT user=postgres dbname=postgres sslmode=disable
# One connection at a time (PGlite has a single backend); see SPEC.md section 2.
# Exit status: 0 started, 77 when node or npm is missing, 1 on any other failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${1:?usage: start.sh PORT [LOGFILE]}
logfile=${2:-${TMPDIR:-/tmp}/passport-pgvector-$port.log}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "start.sh: node and npm are needed for the pgvector server" >&2
	exit 77
fi

# Install once per package-lock.json: the lock's hash is kept inside node_modules.
install_packages() {
	local want have
	want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
	have=$(cat "$here/node_modules/.passport-lock-sha256" 2>/dev/null || true)
	if [[ "$want" == "$have" ]]; then
		return 0
	fi
	echo "start.sh: installing the pgvector server's npm packages" >&2
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
	echo "$want" >"$here/node_modules/.passport-lock-sha256"
}
(
	flock 9
	install_packages
) 9>"${TMPDIR:-/tmp}/passport-pgvector-npm.lock"

node "$here/server.mjs" "$port" >"$logfile" 2>&1 </dev/null &
pid=$!

for _ in $(seq 1 300); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "start.sh: the pgvector server exited; its log ($logfile):" >&2
		cat "$logfile" >&2
		exit 1
	fi
	if pg_isready -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
		echo "$pid"
		exit 0
	fi
	sleep 0.1
done
echo "start.sh: the pgvector server did not accept connections within 30 s; its log ($logfile):" >&2
cat "$logfile" >&2
kill "$pid" 2>/dev/null || true
exit 1
