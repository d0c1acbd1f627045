/**
 * The real CAN channel: a raw SocketCAN socket through node-can (npm `socketcan`). The bit rate is the
 * interface's, set by the OS (systemd/80-can0.network, or `ip link set can0 up type can bitrate 500000`).
 *
 * node-can's own error for a socket it cannot bind is the bare "Error while creating channel"; `open()`
 * replaces it with what is actually wrong, read from the kernel (no SocketCAN in the kernel, no such
 * interface, an interface that is not CAN, an interface that is down) and how to fix it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Clock } from '../../ports.ts';
import { frameProblem, ListenedCanChannel, type CanChannel, type CanChannelError, type CanFrame } from './channel.ts';

/** ARPHRD_CAN (linux/if_arp.h): /sys/class/net/<if>/type of a CAN interface. */
const ARPHRD_CAN = 280;

/** The part of node-can's RawChannel this channel uses. */
interface RawChannel {
  addListener(event: 'onMessage' | 'onStopped', cb: (...args: never[]) => void): void;
  start(): void;
  stop(): void;
  send(msg: { id: number; ext: boolean; rtr: boolean; data: Buffer }): number;
}
interface RawMessage {
  id: number;
  ext?: boolean;
  rtr?: boolean;
  err?: boolean;
  data: Buffer;
}
type CreateRawChannel = (iface: string, options: { timestamps?: boolean; non_block_send?: boolean }) => RawChannel;

export interface SocketcanChannelOptions {
  clock: Clock;
  /** Where the kernel's files are, for the diagnosis (tests point it at a made-up tree). */
  sysRoot?: string;
  /** Replaces node-can (tests). */
  createRawChannel?: CreateRawChannel;
}

export class SocketcanChannel extends ListenedCanChannel implements CanChannel {
  private raw?: RawChannel;
  /** CAN error frames the controller reported (bus errors); counted, not passed on. */
  errorFrames = 0;

  constructor(
    readonly name: string,
    private readonly o: SocketcanChannelOptions,
  ) {
    super();
  }

  async open(): Promise<void> {
    if (this.raw) return;
    let create: CreateRawChannel;
    try {
      create = this.o.createRawChannel ?? loadNodeCan();
    } catch (e) {
      throw new Error(`CAN interface ${this.name}: the socketcan module (node-can) cannot be loaded: ${(e as Error).message}; run npm install on the board so its native part is built`);
    }
    let raw: RawChannel;
    try {
      // non-blocking send: a bus that is off or congested refuses a frame instead of stalling the event loop
      raw = create(this.name, { timestamps: true, non_block_send: true });
    } catch (e) {
      throw new Error(diagnoseCanOpen(this.name, (e as Error)?.message ?? String(e), this.o.sysRoot));
    }
    raw.addListener('onMessage', ((msg: RawMessage) => this.received(msg)) as never);
    raw.addListener('onStopped', (() => {
      this.raw = undefined;
      this.emitError({ code: 'stopped', message: `CAN interface ${this.name} stopped (it went down or was removed)` });
    }) as never);
    raw.start();
    this.raw = raw;
  }

  send(frame: CanFrame): boolean {
    const problem = frameProblem(frame);
    if (problem) return this.fail(`${this.name}: frame not sent: ${problem}`);
    const raw = this.raw;
    if (!raw) return this.fail(`CAN interface ${this.name}: frame 0x${frame.id.toString(16)} not sent: the channel is not open`);
    let n: number;
    try {
      n = raw.send({ id: frame.id, ext: frame.extended === true, rtr: frame.rtr === true, data: Buffer.from(frame.data) });
    } catch (e) {
      return this.fail(`CAN interface ${this.name}: frame 0x${frame.id.toString(16)} not sent: ${(e as Error).message}`);
    }
    // send(2) returns the bytes written, -1 on ENETDOWN, ENOBUFS (tx queue full: bus-off or nobody acknowledging)
    if (n < 0) return this.fail(`CAN interface ${this.name}: frame 0x${frame.id.toString(16)} refused by the kernel (interface down, bus-off, or no other node acknowledging)`);
    return true;
  }

  async close(): Promise<void> {
    const raw = this.raw;
    this.raw = undefined;
    if (!raw) return;
    try {
      raw.stop();
    } catch {
      // already stopped by the kernel
    }
  }

  private received(msg: RawMessage): void {
    if (msg.err) {
      this.errorFrames++;
      return;
    }
    const frame: CanFrame = { id: msg.id, extended: msg.ext === true, rtr: msg.rtr === true, data: new Uint8Array(msg.data), atMs: this.o.clock.nowMs() };
    this.emitFrame(frame);
  }

  private fail(message: string): false {
    this.emitError({ code: 'send_failed', message });
    return false;
  }
}

function loadNodeCan(): CreateRawChannel {
  const require = createRequire(import.meta.url);
  const can = require('socketcan') as { createRawChannelWithOptions: CreateRawChannel };
  return (iface, options) => can.createRawChannelWithOptions(iface, options);
}

/**
 * Why a CAN socket could not be bound to `iface`, in words an installer can act on, read from the kernel's
 * files under `sysRoot` (default `/`): /proc/net/can exists once SocketCAN (can.ko) is loaded;
 * /sys/class/net/<iface> once the interface exists, with its type (280 = CAN) and operstate.
 */
export function diagnoseCanOpen(iface: string, libraryMessage: string, sysRoot = '/'): string {
  const up = `ip link set ${iface} up type can bitrate 500000`;
  const networkd = `systemd/80-can0.network (installed by systemd/install.sh --can)`;
  const dev = join(sysRoot, 'sys/class/net', iface);
  const read = (p: string): string | undefined => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const noSocketcan = !existsSync(join(sysRoot, 'proc/net/can'));
  const modprobe = 'load SocketCAN with "modprobe can_raw"';
  let cause: string;
  if (!existsSync(dev)) {
    cause = `the interface does not exist: enable the CAN HAT's device-tree overlay (docs/install.md, e.g. dtoverlay=mcp2515-can0) and reboot, check "ip link show ${iface}", then bring it up at 500 kbit/s with "${up}" or ${networkd}`;
    if (noSocketcan) cause += `; this kernel has no SocketCAN loaded either (no /proc/net/can): ${modprobe}`;
  } else if (Number(read(join(dev, 'type'))) !== ARPHRD_CAN) {
    cause = `${iface} exists but is not a CAN interface (type ${read(join(dev, 'type')) ?? 'unknown'}); check inverter.can.interface`;
  } else if (noSocketcan) {
    cause = `this kernel has no SocketCAN raw sockets (no /proc/net/can): ${modprobe}`;
  } else if (read(join(dev, 'operstate')) === 'down') {
    cause = `the interface is down: bring it up with "${up}" or ${networkd}`;
  } else {
    cause = `the socket could not be bound (check "ip -details link show ${iface}"; bring it up with "${up}")`;
  }
  return `CAN interface ${iface}: ${cause} [socketcan: ${libraryMessage}]`;
}
