// A PostgreSQL server with TimescaleDB for the tests: PGlite (PostgreSQL in WebAssembly, with
// the timescaledb extension) behind PGlite's wire-protocol socket server, on 127.0.0.1.
//
//   node serve.mjs [port]      (0 or nothing: any free port)
//
// Prints "listening <port>" once it accepts connections. Stops cleanly (server closed,
// database closed, exit 0) on SIGTERM or SIGINT, or when its standard input closes, so it
// never outlives the test process that started it. The database lives in memory: a new
// server is an empty database.
//
// PGlite is one PostgreSQL session: the socket server lets one client at a time use it (the
// others wait), and every client would inherit what the one before left behind (prepared
// statements, an open transaction, cursors, temporary tables, advisory locks). So, as a
// PostgreSQL server does when a connection ends, that is rolled back and discarded whenever a
// client goes, before the next one may use the session (settings a client SET do stay).
import { PGlite } from "@electric-sql/pglite";
import { timescaledb } from "@electric-sql/pglite/timescaledb";
import { PGLiteSocketHandler, PGLiteSocketServer } from "@electric-sql/pglite-socket";

function query(sql) {  // a simple-protocol Query message
  const text = Buffer.from(`${sql}\0`);
  const message = Buffer.alloc(5 + text.length);
  message.write("Q", 0);
  message.writeInt32BE(4 + text.length, 1);
  text.copy(message, 5);
  return new Uint8Array(message);
}

// DISCARD ALL without its RESET ALL, which would set PGlite's search_path to pg_catalog.
const SESSION_END = ["ROLLBACK", "CLOSE ALL", "DEALLOCATE ALL", "UNLISTEN *", "SELECT pg_advisory_unlock_all()",
                     "DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES"];
const detach = PGLiteSocketHandler.prototype.detach;
PGLiteSocketHandler.prototype.detach = function (close) {
  if (this.socket) {  // still holding PGlite: end the client's session (synchronously, in its turn)
    for (const sql of SESSION_END) this.db.execProtocolRawSync(query(sql));
  }
  return detach.call(this, close);
};

const port = Number(process.argv[2] ?? 0);
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
process.stdout.write(`listening ${server.getServerConn().split(":").pop()}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
