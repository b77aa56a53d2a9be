# deps.sh: install the Debian 12 packages the build, the demo and the tests need, only when missing.
#
# Source it, then call ensure_deps. It asks dpkg about each package and runs apt-get (update, then
# install) only when something is missing, so a prepared machine pays nothing. Needs root to
# install; prints what is missing otherwise.

PASSPORT_DEB_PACKAGES=(
	build-essential pkg-config meson ninja-build
	libpq-dev libuv1-dev libcjson-dev libopenblas-dev libsystemd-dev libcairo2-dev libfontconfig-dev
	libmicrohttpd-dev scdoc debhelper lintian
	postgresql-15 postgresql-client-15 pgbouncer
	python3 clang libclang-rt-14-dev valgrind
	# systemd-analyze, for the `units` test (a fresh Debian 12 container has no systemd); util-linux
	# has prlimit, for the memory-cap test.
	systemd util-linux
)

# Node.js serves the pgvector test server (tests/pgvector); any node already on PATH will do.
PASSPORT_NODE_PACKAGES=(nodejs npm)

deb_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

ensure_deps() {
	local missing=() pkg
	for pkg in "${PASSPORT_DEB_PACKAGES[@]}"; do
		deb_installed "$pkg" || missing+=("$pkg")
	done
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		for pkg in "${PASSPORT_NODE_PACKAGES[@]}"; do
			deb_installed "$pkg" || missing+=("$pkg")
		done
	fi
	if [[ ${#missing[@]} -eq 0 ]]; then
		return 0
	fi

	echo "deps: installing ${missing[*]}" >&2
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing packages and not root; run: sudo apt-get install ${missing[*]}" >&2
		return 1
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
