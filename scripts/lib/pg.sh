# pg.sh: run a private, throwaway PostgreSQL 15 (its own data directory and socket, no system cluster).
#
# Source it, then:
#   pg_private_start DIR   initdb into DIR/data and start a server whose socket is in DIR/socket;
#                          exports PGHOST, PGPORT and PGUSER=postgres (trust authentication).
#   pg_private_stop DIR    stop it (fast shutdown). Deleting DIR is the caller's job.
#
# PostgreSQL refuses to run as root, so as root the server runs as the system user passport-pg
# (created when missing); DIR is chowned to it. root can still use the socket.
# The server listens on its Unix socket only. Set PG_PRIVATE_TCP=1 before pg_private_start to also
# listen on 127.0.0.1, on the first free port from 54000 + (PID mod 1000).
# Durability is off (fsync, synchronous_commit, full_page_writes): the data is disposable.

PG_PRIVATE_USER=${PG_PRIVATE_USER:-passport-pg}

# The directory holding initdb, pg_ctl and postgres: version 15 if present, else the newest.
pg_private_bindir() {
	local dir
	if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
		echo /usr/lib/postgresql/15/bin
		return 0
	fi
	dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then
		echo "$dir"
		return 0
	fi
	echo "pg.sh: no PostgreSQL server binaries under /usr/lib/postgresql (install postgresql-15)" >&2
	return 1
}

# Run a command as the server's owner (as-is when not root), from DIR so the cwd is readable.
pg_private_as_owner() {
	local dir=$1
	shift
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$dir" && runuser -u "$PG_PRIVATE_USER" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

pg_private_print_log() {
	local dir=$1
	if [[ -f "$dir/server.log" ]]; then
		echo "---- PostgreSQL server log ($dir/server.log) ----" >&2
		tail -n 200 "$dir/server.log" >&2
		echo "---- end of server log ----" >&2
	fi
}

pg_private_start() {
	local dir=$1 bindir port tries=0 tcp=${PG_PRIVATE_TCP:-0} listen
	if [[ -z "$dir" ]]; then
		echo "usage: pg_private_start DIR" >&2
		return 2
	fi
	bindir=$(pg_private_bindir) || return 1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)

	if [[ $(id -u) -eq 0 ]]; then
		if ! id -u "$PG_PRIVATE_USER" >/dev/null 2>&1; then
			useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_PRIVATE_USER" || return 1
		fi
		chown "$PG_PRIVATE_USER": "$dir"
	fi
	chmod 0755 "$dir"

	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		if ! pg_private_as_owner "$dir" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
			-E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
			echo "pg.sh: initdb failed:" >&2
			cat "$dir/initdb.log" >&2
			return 1
		fi
		pg_private_as_owner "$dir" tee -a "$dir/data/postgresql.conf" >/dev/null <<-EOF

			# pg.sh: a private, disposable test server.
			unix_socket_directories = '$dir/socket'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			max_connections = 200
			shared_buffers = 128MB
		EOF
	fi
	pg_private_as_owner "$dir" mkdir -p "$dir/socket"

	port=$((54000 + $$ % 1000))
	while :; do
		if [[ "$tcp" == 1 ]]; then
			listen=127.0.0.1
		else
			listen=''
		fi
		if pg_private_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-c listen_addresses='$listen' -c port=$port" start >"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		tries=$((tries + 1))
		# Only a TCP port clash is worth another try.
		if [[ "$tcp" != 1 || $tries -ge 20 ]] || ! grep -q "could not bind" "$dir/server.log" 2>/dev/null; then
			echo "pg.sh: PostgreSQL failed to start:" >&2
			cat "$dir/pg_ctl.log" >&2
			pg_private_print_log "$dir"
			return 1
		fi
		port=$((54000 + (port - 54000 + 1) % 1000))
	done

	export PGHOST="$dir/socket" PGPORT="$port" PGUSER=postgres
	for _ in $(seq 1 100); do
		if "$bindir/pg_isready" -q -h "$PGHOST" -p "$PGPORT" -U postgres; then
			return 0
		fi
		sleep 0.1
	done
	echo "pg.sh: PostgreSQL started but does not accept connections" >&2
	pg_private_print_log "$dir"
	return 1
}

pg_private_stop() {
	local dir=$1 bindir
	[[ -n "$dir" && -f "$dir/data/postmaster.pid" ]] || return 0
	bindir=$(pg_private_bindir) || return 1
	if ! pg_private_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >"$dir/pg_ctl.log" 2>&1; then
		echo "pg.sh: pg_ctl stop failed:" >&2
		cat "$dir/pg_ctl.log" >&2
		pg_private_print_log "$dir"
		return 1
	fi
}
