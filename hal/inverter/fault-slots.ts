/**
 * Fault bookkeeping for a driver whose faults come from several independent causes (the link, a command the
 * device cannot take, the device not following): one slot per cause, the port shows the first one set in
 * slot order, a slot keeps its `sinceMs` while it stays set (its code or message may change), and listeners
 * hear of a change of the port's fault code (not of every message). Shared by the SunSpec and CAN drivers. No I/O; the time comes in from the caller's clock.
 */
import type { PortFault } from '../ports.ts';

export class FaultSlots<S extends string> {
  private readonly faults = new Map<S, PortFault>();

  constructor(
    /** Slots in the order they win: the first one set is the port's fault. */
    private readonly order: readonly S[],
    private readonly nowMs: () => number,
    /** Called when the port's fault code changes (set, cleared, or replaced by another slot's). */
    private readonly changed: (after: PortFault | undefined, before: PortFault | undefined) => void,
  ) {}

  /** The port's fault: the first slot set. */
  current(): PortFault | undefined {
    for (const s of this.order) {
      const f = this.faults.get(s);
      if (f) return f;
    }
    return undefined;
  }

  get(slot: S): PortFault | undefined {
    return this.faults.get(slot);
  }

  /** Set a slot (code given) or clear it (code undefined). */
  set(slot: S, code: string | undefined, message = ''): void {
    const before = this.current();
    const cur = this.faults.get(slot);
    if (code === undefined) {
      if (!cur) return;
      this.faults.delete(slot);
    } else {
      if (cur && cur.code === code && cur.message === message) return;
      // the slot has been faulty since it was first set, whatever its cause became meanwhile
      this.faults.set(slot, { code, message, sinceMs: cur?.sinceMs ?? this.nowMs() });
    }
    const after = this.current();
    if (before?.code !== after?.code) this.changed(after, before);
  }
}
