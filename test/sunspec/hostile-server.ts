/**
 * A test-only Modbus TCP front for the simulated SunSpec device that misbehaves in ways a real device on
 * a bad day does: it closes the connection after every answer, or answers each request only after a
 * delay. It speaks the MBAP framing itself (FC 3 and FC 16, exceptions as Modbus exceptions), so the
 * driver's real transport is what meets it. Loopback only.
 */
import net from 'node:net';
import type { Clock } from '../../hal/ports.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { createSimSunspecDevice, type SimSunspecDevice, type SunspecDeviceMap } from '../../hal/sim/sunspec-server.ts';
import { freePort } from '../helpers/broker.ts';

export interface HostileOptions {
  /** Close the TCP connection right after each answer is sent. */
  closeAfterAnswer?: boolean;
  /** Answer each request this long after it arrives, ms of real time (requests are served one at a time). */
  delayMs?: number;
}

export interface HostileServer {
  port: number;
  device: SimSunspecDevice;
  car: SimCar;
  inverter: SimInverter;
  opts: HostileOptions;
  /** Connections accepted so far. */
  connections: number;
  /** Every FC 16 write: when it was answered (performance.now(), ms) and where. */
  writes: { atMs: number; address: number; values: number[] }[];
  close(): Promise<void>;
}

type Cb<T> = (err: Error | null, v: T) => void;

export async function startHostileServer(o: { clock: Clock; deviceMap?: SunspecDeviceMap; opts?: HostileOptions; ratedW?: number }): Promise<HostileServer> {
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const inverter = new SimInverter({ ratedW: o.ratedW ?? 11000, efficiency: 0.95 }, car, o.clock);
  const device = createSimSunspecDevice({ inverter, car, clock: o.clock, deviceMap: o.deviceMap });
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  const h: HostileServer = { port, device, car, inverter, opts: { ...o.opts }, connections: 0, writes: [], close: async () => undefined };

  const serve = (pdu: Buffer): Promise<Buffer> =>
    new Promise((resolve) => {
      const fc = pdu[0];
      const fail = (e: Error | null): void => {
        const code = (e as { modbusErrorCode?: number } | null)?.modbusErrorCode ?? 4;
        resolve(Buffer.from([fc | 0x80, code]));
      };
      const addr = pdu.readUInt16BE(1);
      const count = pdu.readUInt16BE(3);
      if (fc === 3) {
        const cb: Cb<number[]> = (err, v) => {
          if (err) return fail(err);
          const out = Buffer.alloc(2 + 2 * v.length);
          out[0] = 3;
          out[1] = 2 * v.length;
          v.forEach((x, i) => out.writeUInt16BE(x & 0xffff, 2 + 2 * i));
          resolve(out);
        };
        device.vector.getMultipleHoldingRegisters!(addr, count, device.unitId, cb as never);
      } else if (fc === 16) {
        const values = Array.from({ length: count }, (_, i) => pdu.readUInt16BE(6 + 2 * i));
        const cb: Cb<void> = (err) => {
          if (err) return fail(err);
          h.writes.push({ atMs: performance.now(), address: addr, values });
          resolve(pdu.subarray(0, 5));
        };
        device.vector.setRegisterArray!(addr, values, device.unitId, cb as never);
      } else {
        resolve(Buffer.from([fc | 0x80, 1]));
      }
    });

  const server = net.createServer((sock) => {
    h.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let busy: Promise<void> = Promise.resolve();
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 7 && buf.length >= 6 + buf.readUInt16BE(4)) {
        const len = buf.readUInt16BE(4);
        const frame = buf.subarray(0, 6 + len);
        buf = buf.subarray(6 + len);
        busy = busy.then(async () => {
          if (h.opts.delayMs) await new Promise((r) => setTimeout(r, h.opts.delayMs));
          const pdu = await serve(frame.subarray(7));
          if (sock.destroyed) return;
          const head = Buffer.alloc(7);
          frame.copy(head, 0, 0, 4); // transaction and protocol id
          head.writeUInt16BE(pdu.length + 1, 4);
          head[6] = frame[6];
          sock.write(Buffer.concat([head, pdu]));
          if (h.opts.closeAfterAnswer) sock.end();
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  h.close = () =>
    new Promise<void>((resolve) => {
      device.stop();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return h;
}
