/**
 * Dispatch intake: a message on a dispatch topic in, a validated command to the core or an answer from
 * here out. Invalid payloads (codec rules, signature, replay) and dispatches beyond the live-dispatch
 * bound are answered here and never reach the core. Answers to invalid payloads are rate-limited so a
 * flood cannot fill the outbox.
 */
import type { KeyObject } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { OutboundMessage } from '../contract.ts';
import type { DispatchCommand, ReplyRoute } from '../control/types.ts';
import { parseDispatchPayload, type CodecReason } from './codec.ts';
import { loadPublicKey, ReplayGuard, type ReplayMemory } from './signing.ts';
import type { UplinkSettings } from './settings.ts';
import type { InvalidDispatch, UplinkLog, UplinkStats } from './client.ts';

/** A topic the device may publish to: no wildcards, no NUL, not empty, not a `$` system topic. */
export function isPublishableTopic(t: unknown): t is string {
  return typeof t === 'string' && t.length > 0 && t.length <= 1024 && !/[+#\u0000]/.test(t) && !t.startsWith('$');
}

/** Why intake refused a payload: the codec's reasons, and `dispatch_limit` (too many live dispatches). */
export type IntakeReason = CodecReason | 'dispatch_limit';

/** Default bound on live (scheduled or active) dispatches; beyond it new ones get `dispatch_limit`. */
export const DEFAULT_MAX_LIVE_DISPATCHES = 100;

export interface IntakeOptions {
  root: string;
  settings: () => UplinkSettings;
  /** Calendar time: what a dispatch's `start`, `expiresAt` and `issuedAt` are compared with. */
  nowMs: () => number;
  /** Monotonic time: the refill of the invalid-answer rate limit (a wall step back must not stop it). */
  monoMs: () => number;
  log: UplinkLog;
  stats: UplinkStats;
  onCommand: (cmd: DispatchCommand) => void;
  onInvalid?: (info: InvalidDispatch) => void;
  /** Sends an answer (through the outbox). */
  answer: (m: OutboundMessage) => void;
  replay?: ReplayMemory;
  invalidAnswersPerS: number;
  invalidAnswersBurst: number;
  /** Live dispatches the device holds now (scheduled or active, and commands not yet taken in). */
  liveDispatches?: () => number;
  maxLiveDispatches: number;
}

export class DispatchIntake {
  private readonly sources = new Map<string, string>();
  private readonly replay: ReplayMemory;
  private publicKey: KeyObject | undefined;
  private tokens: number;
  private tokensAtMs = 0;
  /** Dispatch commands passed on since the live count was last read as changed: the core takes them in on its next tick. */
  private passedSinceCount = 0;
  private lastLiveCount = -1;

  constructor(private readonly o: IntakeOptions) {
    this.replay = o.replay ?? new ReplayGuard();
    this.tokens = o.invalidAnswersBurst;
    this.setGroups(o.settings().groups);
  }

  /** Topic → source (`device` or `group:<name>`). */
  topics(): string[] {
    return [...this.sources.keys()];
  }

  setGroups(groups: string[]): void {
    const s = this.o.settings();
    for (const [t, src] of this.sources) if (src.startsWith('group:')) this.sources.delete(t);
    this.sources.set(`${this.o.root}/dispatch`, 'device');
    for (const g of groups) this.sources.set(`${s.prefix}/group/${g}/dispatch`, `group:${g}`);
  }

  /** Loads the configured key; without a usable one every dispatch is refused (never accepted unsigned). */
  loadKey(): string | undefined {
    const k = this.o.settings().dispatchPublicKey;
    this.publicKey = undefined;
    if (!k) return undefined;
    try {
      this.publicKey = loadPublicKey(k);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  handle(topic: string, payload: Buffer, packet: IPublishPacket): void {
    try {
      this.o.stats.received++;
      const source = this.sources.get(topic);
      if (!source) return;
      const replyTo = this.replyRoute(packet);
      const s = this.o.settings();
      if (s.dispatchPublicKey && !this.publicKey) {
        // configured for signed dispatch but without a usable key: nothing may pass, signed or not
        // (the payload is not checked further, so nothing is remembered by the replay guard)
        const r = parseDispatchPayload(payload, { nowMs: this.o.nowMs(), source, maxBytes: s.maxPayloadBytes, maxAgeS: s.maxDispatchAgeS, replyTo });
        const id = r.ok ? (r.command.kind === 'cancel' ? r.command.id : r.command.request.id) : r.id;
        this.answerInvalid(topic, source, { id, reason: 'signature', field: 'sig', message: 'device has no usable dispatch key' }, replyTo);
        return;
      }
      const r = parseDispatchPayload(payload, {
        nowMs: this.o.nowMs(), source, maxBytes: s.maxPayloadBytes, publicKey: this.publicKey, maxAgeS: s.maxDispatchAgeS, replay: this.replay, replyTo,
      });
      if (!r.ok) {
        this.answerInvalid(topic, source, r, replyTo);
        return;
      }
      if (r.command.kind === 'dispatch' && this.overLiveBound()) {
        this.answerInvalid(topic, source, {
          id: r.command.request.id, reason: 'dispatch_limit', field: 'id',
          message: `the device holds ${this.o.maxLiveDispatches} scheduled or active dispatches, its limit; cancel or wait for one to end`,
        }, replyTo);
        return;
      }
      this.o.stats.commands++;
      if (r.command.kind === 'dispatch') this.passedSinceCount++;
      this.o.onCommand(r.command);
    } catch (e) {
      this.o.log.error({ err: (e as Error).message, topic }, 'dispatch handler failed');
    }
  }

  /**
   * The core holds every live dispatch in memory and looks at each every tick: unbounded, a flood of
   * future dispatches froze the loop (issue 15 §10). Commands passed on since the count last moved are
   * counted too, since the core takes them in only on its next tick.
   */
  private overLiveBound(): boolean {
    if (!this.o.liveDispatches) return false;
    let live: number;
    try {
      live = this.o.liveDispatches();
    } catch {
      return false;
    }
    if (live !== this.lastLiveCount) {
      this.lastLiveCount = live;
      this.passedSinceCount = 0;
    }
    return live + this.passedSinceCount >= this.o.maxLiveDispatches;
  }

  private replyRoute(packet: IPublishPacket): ReplyRoute | undefined {
    const p = packet.properties;
    if (!p?.responseTopic) return undefined;
    if (!isPublishableTopic(p.responseTopic)) {
      this.o.log.warn({ responseTopic: String(p.responseTopic).slice(0, 80) }, 'ignored an unusable MQTT 5 response topic');
      return undefined;
    }
    const route: ReplyRoute = { responseTopic: p.responseTopic };
    const cd = p.correlationData as Buffer | undefined;
    if (cd && cd.length > 0) route.correlationData = Buffer.from(cd).toString('base64');
    return route;
  }

  /** Answer a refused payload ourselves, through the outbox; rate-limited so a flood cannot fill it. */
  private answerInvalid(topic: string, source: string, r: { id: string | null; reason: IntakeReason; field?: string; message: string }, replyTo: ReplyRoute | undefined): void {
    this.o.stats.invalid++;
    const now = this.o.monoMs();
    this.tokens = Math.min(this.o.invalidAnswersBurst, this.tokens + (Math.max(0, now - this.tokensAtMs) / 1000) * this.o.invalidAnswersPerS);
    this.tokensAtMs = now;
    const answered = this.tokens >= 1;
    if (answered) {
      this.tokens -= 1;
      const payload: Record<string, unknown> = { id: r.id, status: 'rejected', reason: r.reason };
      if (r.field !== undefined) payload.field = r.field;
      payload.message = r.message;
      const m: OutboundMessage = { topic: 'dispatch/response', payload, qos: 1, retain: false, class: 'response' };
      if (replyTo) {
        m.responseTopic = replyTo.responseTopic;
        if (replyTo.correlationData) m.correlationData = replyTo.correlationData;
      }
      this.o.answer(m);
    } else {
      this.o.stats.invalidDropped++;
      if (this.o.stats.invalidDropped % 1000 === 1) this.o.log.warn({ dropped: this.o.stats.invalidDropped }, 'invalid dispatch flood: answers dropped');
    }
    try {
      this.o.onInvalid?.({ topic, source, id: r.id, reason: r.reason, field: r.field, message: r.message, answered });
    } catch (e) {
      this.o.log.error({ err: (e as Error).message }, 'onInvalid handler failed');
    }
  }
}
