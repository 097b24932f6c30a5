// Opens N keep-alive connections to HOST:PORT, sends one GET /healthz on each, waits for
// every answer, then prints "open K" (K: connections still open) and holds them idle until
// standard input closes. Used by bench/run to read the gateway's RSS under idle clients.
'use strict';
const net = require('node:net');

const [host, port, countText] = process.argv.slice(2);
const count = Number(countText);
const kBatch = 100;  // connections opened at once, below the listen backlog

const sockets = [];
let answered = 0;
let closed = 0;

function openOne() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({host, port: Number(port)});
    let done = false;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`);
    });
    socket.on('data', (chunk) => {
      if (done) return;
      done = true;
      if (!chunk.toString('latin1').startsWith('HTTP/1.1 200')) {
        reject(new Error(`unexpected answer: ${chunk.toString('latin1').slice(0, 80)}`));
        return;
      }
      answered++;
      resolve();
    });
    socket.on('close', () => {
      closed++;
      if (!done) reject(new Error('closed before answering'));
    });
    socket.on('error', (err) => {
      if (!done) reject(err);
    });
    sockets.push(socket);
  });
}

async function main() {
  for (let i = 0; i < count; i += kBatch) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + kBatch); j++) batch.push(openOne());
    await Promise.all(batch);
  }
  // Let the server settle (buffers released after the answers) before the RSS is read.
  await new Promise((r) => setTimeout(r, 500));
  console.log(`open ${answered - closed} answered ${answered}`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(`idle_connections: ${err.message}`);
  process.exit(1);
});
