# pgbouncer.sh: a private PgBouncer in transaction mode in front of a private PostgreSQL, for tests.
#
#   pgbouncer_private_start DIR SERVER_SOCKET_DIR SERVER_PORT [POOL_SIZE]
#       write DIR/pgbouncer.ini and DIR/userlist.txt and start PgBouncer (Debian's package,
#       installed by deps.sh) listening on its Unix socket in DIR, pool_mode = transaction,
#       default_pool_size POOL_SIZE (default 1: every client of a database and user shares one
#       server connection, so whatever a client leaves on it, the next one sees). Trust
#       authentication for postgres, passportd and passport_migrate. Prints "port=N".
#   pgbouncer_private_stop DIR
#
# PgBouncer refuses to run as root; as root it runs as the private server's user (pg.sh).
PG_PRIVATE_USER=${PG_PRIVATE_USER:-passport-pg}

pgbouncer_private_as_owner() {
	local dir=$1
	shift
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$dir" && runuser -u "$PG_PRIVATE_USER" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

pgbouncer_private_start() {
	local dir=$1 server_dir=$2 server_port=$3 pool_size=${4:-1} port tries=0
	local bin=/usr/sbin/pgbouncer
	if [[ ! -x $bin ]]; then
		bin=$(command -v pgbouncer || true)
	fi
	if [[ -z "$bin" ]]; then
		echo "pgbouncer.sh: pgbouncer is not installed (scripts/lib/deps.sh installs it)" >&2
		return 1
	fi
	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown "$PG_PRIVATE_USER": "$dir"
	fi
	port=$((56000 + $$ % 1000))
	while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || [[ -e "$dir/.s.PGSQL.$port" ]]; do
		port=$((port + 1))
	done
	pgbouncer_private_as_owner "$dir" tee "$dir/userlist.txt" >/dev/null <<-EOF
		"postgres" ""
		"passportd" ""
		"passport_migrate" ""
	EOF
	pgbouncer_private_as_owner "$dir" tee "$dir/pgbouncer.ini" >/dev/null <<-EOF
		[databases]
		* = host=$server_dir port=$server_port

		[pgbouncer]
		listen_addr =
		listen_port = $port
		unix_socket_dir = $dir
		auth_type = trust
		auth_file = $dir/userlist.txt
		pool_mode = transaction
		default_pool_size = $pool_size
		max_client_conn = 100
		server_reset_query =
		logfile = $dir/pgbouncer.log
		pidfile = $dir/pgbouncer.pid
	EOF
	pgbouncer_private_as_owner "$dir" "$bin" -d "$dir/pgbouncer.ini" >&2 || return 1
	while [[ ! -S "$dir/.s.PGSQL.$port" ]]; do
		tries=$((tries + 1))
		if [[ $tries -gt 100 ]]; then
			echo "pgbouncer.sh: PgBouncer did not start:" >&2
			cat "$dir/pgbouncer.log" >&2 || true
			return 1
		fi
		sleep 0.1
	done
	echo "port=$port"
}

pgbouncer_private_stop() {
	local dir=$1 pid
	pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
	if [[ -n "$pid" ]]; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
}
