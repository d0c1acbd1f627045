/**
 * The CAN channel: the one seam between the CAN BMS driver and a bus. The real one is SocketCAN through
 * node-can (socketcan-channel.ts); the in-memory bus (memory-bus.ts) stands in for tests, simulation and
 * replay, with the same semantics: frames are classic CAN 2.0 (11- or 29-bit id, 0–8 data bytes), each
 * received frame carries the time the bus saw it, and a bus that goes away is reported, never thrown at a
 * listener.
 */

/** One classic CAN frame. */
export interface CanFrame {
  /** Identifier: 11 bits (0..0x7FF) unless `extended`, then 29 bits. */
  id: number;
  /** 29-bit identifier (CAN 2.0B). The BMS profile uses 11-bit ids only. */
  extended?: boolean;
  /** Remote transmission request: no data, `data` is empty. */
  rtr?: boolean;
  /** Payload, 0–8 bytes; its length is the DLC. */
  data: Uint8Array;
  /**
   * When the bus saw the frame, epoch ms (the kernel's receive timestamp on SocketCAN; the bus clock's
   * `nowMs()` on the in-memory bus; the log's time in a replay). Undefined on a frame not yet sent.
   */
  atMs?: number;
}

/** A channel reports trouble through this: the interface went down, a send was refused, the socket died. */
export interface CanChannelError {
  /** `send_failed` (one frame refused: bus-off, buffer full, interface down) or `stopped` (no more frames will come). */
  code: 'send_failed' | 'stopped';
  message: string;
}

export interface CanChannel {
  /** The interface name (`can0`, or the in-memory endpoint's name), for messages. */
  readonly name: string;
  /**
   * Bind to the interface. Rejects with an error that names the interface and how to make it exist
   * (`ip link set can0 up type can bitrate 500000`) when it cannot.
   */
  open(): Promise<void>;
  /**
   * Put one frame on the bus. Returns false (and reports a `send_failed` error to the error listeners)
   * when the bus refused it; never throws.
   */
  send(frame: CanFrame): boolean;
  /** Every frame received from other nodes, in bus order; the listener must not throw (a throw is dropped). */
  onFrame(listener: (frame: CanFrame) => void): () => void;
  onError(listener: (error: CanChannelError) => void): () => void;
  /** Release the interface; idempotent. */
  close(): Promise<void>;
}

/**
 * The listener bookkeeping every channel shares: `onFrame`/`onError` registration, and delivery that a
 * throwing listener cannot break (the contract says listeners must not throw; one that does loses its
 * frame or error, the others still get theirs).
 */
export abstract class ListenedCanChannel {
  private readonly frameListeners = new Set<(f: CanFrame) => void>();
  private readonly errorListeners = new Set<(e: CanChannelError) => void>();

  onFrame(listener: (frame: CanFrame) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  onError(listener: (error: CanChannelError) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  protected emitFrame(frame: CanFrame): void {
    for (const l of [...this.frameListeners]) safeCall(() => l(frame));
  }

  protected emitError(error: CanChannelError): void {
    for (const l of [...this.errorListeners]) safeCall(() => l(error));
  }
}

/** Run a listener; its exception is dropped (see ListenedCanChannel). */
export function safeCall(fn: () => void): void {
  try {
    fn();
  } catch {
    // a listener's exception must not stop the channel (see ListenedCanChannel)
  }
}

/** Checks a frame's shape; the reason when it is not a classic CAN frame, undefined when it is. */
export function frameProblem(f: CanFrame): string | undefined {
  const max = f.extended ? 0x1fffffff : 0x7ff;
  if (!Number.isInteger(f.id) || f.id < 0 || f.id > max) return `id ${f.id} is outside 0..0x${max.toString(16).toUpperCase()}`;
  if (!(f.data instanceof Uint8Array)) return 'data is not a byte array';
  if (f.data.length > 8) return `${f.data.length} data bytes (classic CAN carries at most 8)`;
  if (f.rtr && f.data.length > 0) return 'a remote frame carries no data';
  return undefined;
}

/** `351`, or `1ABCDEF0` for an extended id: the spelling candump uses. */
export function idHex(f: Pick<CanFrame, 'id' | 'extended'>): string {
  return f.extended ? f.id.toString(16).toUpperCase().padStart(8, '0') : f.id.toString(16).toUpperCase().padStart(3, '0');
}

/** `7A 13 F2 FE` */
export function bytesHex(data: Uint8Array): string {
  return [...data].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}
