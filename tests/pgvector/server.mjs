// server.mjs: a pgvector-enabled PostgreSQL (PGlite, in memory) served to libpq clients over TCP.
//
// Usage: node server.mjs PORT [HOST]
//
// PGlite has a single backend: one client connection at a time (others queue), no NOTIFY between
// connections, and SKIP LOCKED blocks. Use it only for single-connection tests of the
// vector(1536) path. The database lives in memory and vanishes when the process exits.
import { PGlite } from '@electric-sql/pglite'
import { vector } from '@electric-sql/pglite-pgvector'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const port = Number.parseInt(process.argv[2] ?? '', 10)
const host = process.argv[3] ?? '127.0.0.1'
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node server.mjs PORT [HOST]')
  process.exit(2)
}

const db = await PGlite.create({ extensions: { vector } })
const server = new PGLiteSocketServer({ db, port, host, maxConnections: 1 })
server.addEventListener('error', (event) => {
  console.error('pgvector server error:', event.detail ?? event)
})
await server.start()
console.log(`pgvector server listening on ${host}:${port}`)

let stopping = false
async function shutdown(signal) {
  if (stopping) process.exit(1)
  stopping = true
  console.log(`pgvector server stopping (${signal})`)
  try {
    await server.stop()
    await db.close()
  } finally {
    process.exit(0)
  }
}
process.on('SIGINT', () => shutdown('SIGINT'))
process.on('SIGTERM', () => shutdown('SIGTERM'))
