/**
 * An in-memory CAN bus: what the tests, the simulation (`inverter.can.interface: "sim"`) and the replay
 * of a capture use instead of SocketCAN. Every endpoint is a {@link CanChannel}; a frame one endpoint sends
 * reaches every other open endpoint (not itself: SocketCAN's own-frame loopback is off for raw sockets
 * by default), stamped with the bus clock's time, in the order sent.
 *
 * Delivery is synchronous but never re-entrant: a frame sent from inside a listener is queued and
 * delivered after the current one, so a node that answers a frame at once cannot recurse.
 *
 * `down()` is the interface going away (cable pulled from a USB adapter, `ip link set can0 down`): open
 * endpoints are told `stopped` and receive nothing more, sends fail, and `open()` rejects until `up()`.
 */
import type { Clock } from '../../ports.ts';
import { frameProblem, ListenedCanChannel, safeCall, type CanChannel, type CanChannelError, type CanFrame } from './channel.ts';

export class InMemoryCanBus {
  private readonly endpoints = new Set<MemoryEndpoint>();
  private readonly taps = new Set<(frame: CanFrame, from: string) => void>();
  private queue: { frame: CanFrame; from: MemoryEndpoint }[] = [];
  private delivering = false;
  private isUp = true;
  /** Frames carried since the bus was made. */
  frameCount = 0;

  constructor(
    readonly clock: Clock,
    /** The interface name endpoints report (`sim-can`). */
    readonly name = 'sim-can',
  ) {}

  /** A new node on the bus; it takes part once opened. */
  channel(nodeName = this.name): CanChannel & { readonly node: string } {
    return new MemoryEndpoint(this, nodeName);
  }

  /** See every frame on the bus with the node that sent it (a recorder, a bench). Returns the unsubscribe. */
  tap(listener: (frame: CanFrame, from: string) => void): () => void {
    this.taps.add(listener);
    return () => this.taps.delete(listener);
  }

  get up(): boolean {
    return this.isUp;
  }

  /** The interface goes away: open endpoints stop, sends fail, opens are refused. */
  down(): void {
    if (!this.isUp) return;
    this.isUp = false;
    this.queue = [];
    for (const e of [...this.endpoints]) e.stopped(`interface ${this.name} went down`);
  }

  /** The interface is back: endpoints can be opened again (the ones that stopped stay stopped). */
  restore(): void {
    this.isUp = true;
  }

  /** @internal */
  attach(e: MemoryEndpoint): void {
    if (!this.isUp) throw new Error(`CAN interface ${this.name} is down`);
    this.endpoints.add(e);
  }

  /** @internal */
  detach(e: MemoryEndpoint): void {
    this.endpoints.delete(e);
  }

  /** @internal */
  transmit(frame: CanFrame, from: MemoryEndpoint): void {
    const stamped: CanFrame = { id: frame.id, extended: frame.extended, rtr: frame.rtr, data: Uint8Array.from(frame.data), atMs: this.clock.nowMs() };
    this.frameCount++;
    this.queue.push({ frame: stamped, from });
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        for (const t of [...this.taps]) safeCall(() => t(next.frame, next.from.node));
        for (const e of [...this.endpoints]) if (e !== next.from) e.deliver(next.frame);
      }
    } finally {
      this.delivering = false;
    }
  }
}

class MemoryEndpoint extends ListenedCanChannel implements CanChannel {
  private isOpen = false;

  constructor(
    private readonly bus: InMemoryCanBus,
    readonly node: string,
  ) {
    super();
  }

  get name(): string {
    return this.bus.name;
  }

  async open(): Promise<void> {
    if (this.isOpen) return;
    this.bus.attach(this);
    this.isOpen = true;
  }

  send(frame: CanFrame): boolean {
    const problem = frameProblem(frame);
    if (problem) return this.fail('send_failed', `${this.name}: frame not sent: ${problem}`);
    if (!this.isOpen) return this.fail('send_failed', `${this.name}: frame 0x${frame.id.toString(16)} not sent: the channel is not open`);
    if (!this.bus.up) return this.fail('send_failed', `${this.name}: frame 0x${frame.id.toString(16)} not sent: the interface is down`);
    this.bus.transmit(frame, this);
    return true;
  }

  async close(): Promise<void> {
    this.isOpen = false;
    this.bus.detach(this);
  }

  /** @internal */
  deliver(frame: CanFrame): void {
    this.emitFrame(frame);
  }

  /** @internal */
  stopped(message: string): void {
    this.isOpen = false;
    this.bus.detach(this);
    this.emitError({ code: 'stopped', message });
  }

  private fail(code: CanChannelError['code'], message: string): false {
    this.emitError({ code, message });
    return false;
  }
}
