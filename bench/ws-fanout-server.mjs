// The raw baseline of the subscribers measure (g), run by bare node as a process of its own, as
// `kiln serve` is: a trivial `ws` server that, once told `go` on stdin, spawns `/bin/sh -c SCRIPT` and
// sends every complete line of its output to every connected client, framed as a graphql-ws `next`
// of `buildLog`, then a `complete` when the script exits. No GraphQL, no store, no buffer bound.
//
//   node bench/ws-fanout-server.mjs SCRIPT   prints {"port":N} once it listens
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { WebSocketServer } from 'ws';

const script = process.argv[2];
if (!script) {
  console.error('usage: node bench/ws-fanout-server.mjs SCRIPT');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));

function broadcast(text) {
  for (const client of wss.clients) client.send(text);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'go') return;
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (data) => {
    const lines = (partial + data).split('\n');
    partial = lines.pop() ?? '';
    if (lines.length === 0) return;
    broadcast(JSON.stringify({ id: '1', type: 'next', payload: { data: { buildLog: { lines } } } }));
  });
  child.on('close', () => {
    if (partial)
      broadcast(
        JSON.stringify({ id: '1', type: 'next', payload: { data: { buildLog: { lines: [partial] } } } }),
      );
    broadcast(JSON.stringify({ id: '1', type: 'complete' }));
  });
});
