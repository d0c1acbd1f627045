/**
 * The uplink's timers (connect watchdog, reconnect backoff, supervisor) run on the injected clock: a
 * broker that accepts TCP and never answers is given up on after `connectTimeoutS` of that clock, and
 * retried with backoff, while real time alone moves nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { createUplink } from '../../src/uplink/client.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { MemoryOutbox } from './memory-outbox.ts';
import { quietLog, sleep, uplinkConfig, waitFor } from './helpers.ts';

test('connect watchdog and backoff on the virtual clock: a silent broker is abandoned after connectTimeoutS and retried', async () => {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const timer = new VirtualClock(Date.UTC(2026, 10, 23, 17, 0, 0));
  const uplink = createUplink({
    config: uplinkConfig('dev-vclock', `mqtt://127.0.0.1:${port}`, { connectTimeoutS: 10 }), outbox: new MemoryOutbox(), clock: timer, timer, log: quietLog,
    reconnectMinMs: 1000, reconnectMaxMs: 8000, onCommand: () => {},
  });
  try {
    await uplink.start();
    await waitFor(() => sockets.length === 1, 'the first connection attempt');
    // real time passes, the uplink's clock does not: no watchdog, no retry
    await sleep(1500);
    assert.equal(uplink.stats().connectAttempts, 1);
    assert.equal(sockets.length, 1);
    // 10 s of connect timeout plus the watchdog's 1 s grace, on the uplink's clock
    timer.advance(10_999);
    assert.equal(uplink.stats().lastError, undefined, 'gave up before connectTimeoutS + 1 s');
    timer.advance(1);
    assert.match(uplink.stats().lastError ?? '', /no CONNACK within 10 s/);
    // the first retry waits between half and all of reconnectMinMs
    timer.advance(1000);
    await waitFor(() => sockets.length === 2, 'the retry');
    assert.equal(uplink.stats().connectAttempts, 2);
    assert.equal(uplink.connected(), false);
  } finally {
    await uplink.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
