/**
 * A simulated SunSpec grid meter (models 201–204 integer + SF, or 211–214 float32) and PV inverter (101–103),
 * served over real Modbus TCP on 127.0.0.1 like the simulated inverter (sunspec-server.ts), so the real
 * meter driver reads them. Several devices can sit behind one TCP port, each on its own unit id, as behind
 * a Modbus TCP-to-RS-485 gateway: that is how `npm start` serves the inverter and the meter on one "bus".
 *
 * Values come from a source function at each request (the simulated site's grid power, currents and
 * counters). Faults for tests: silence, exceptions, register overrides, dropped frames, points served as
 * "not implemented" (0x8000 / NaN), a device that counts export as positive.
 */
import * as modbusSerial from 'modbus-serial';
import type { ServerTCP as ServerTCPType, IServiceVector } from 'modbus-serial/ServerTCP.js';
import { encodePoint, encodeRaw, modelLayout, sentinelRegs, type ModelLayout } from '../inverter/sunspec/codec.ts';

const ServerTCP = (modbusSerial as unknown as { ServerTCP: typeof ServerTCPType }).ServerTCP;

/** What the meter measures at this instant. */
export interface SimMeterReading {
  /** W, positive = import (the device's own sign is set by `exportPositive`). */
  gridPowerW: number;
  /** Per phase, A (magnitudes), L1 first. */
  phaseCurrentsA: number[];
  importedWh: number;
  exportedWh: number;
}

export interface SimMeterDeviceOptions {
  /** 201–204 or 211–214 (default 203, wye three-phase, integer + SF). */
  model?: number;
  /** Register of the `SunS` marker (default 40000). */
  base?: number;
  unitId?: number;
  read: () => SimMeterReading;
  /** The device counts export as positive W (some do): the driver's `invertSign` undoes it. */
  exportPositive?: boolean;
  /** Scale factors for the integer models (defaults below). */
  scaleFactors?: Record<string, number>;
}

export interface SimPvDeviceOptions {
  /** 101–103 (default 103). */
  model?: number;
  base?: number;
  unitId?: number;
  /** AC output now, W. */
  read: () => number;
}

export interface SimModbusFaults {
  /** Answer nothing (the device hangs or is unplugged; clients time out). */
  silent?: boolean;
  /** Answer every request with this Modbus exception code. */
  exception?: number;
  /** Registers served with these raw values instead of the live ones. */
  overrides: Map<number, number>;
  /** Points served as their "not implemented" sentinel (0x8000, 0xFFFF, NaN...). */
  unimplemented: Set<string>;
  /** Leave this many of the next requests unanswered, then answer again. */
  dropRequests?: number;
}

export interface SimModbusDevice {
  unitId: number;
  vector: IServiceVector;
  faults: SimModbusFaults;
  requestCount: number;
  /** Address of a point's first register. */
  addressOf(point: string): number;
  readonly model: number;
  readonly base: number;
}

/** Scale factors of the simulated integer meter: negative and positive ones, to exercise scaling. */
export const SIM_METER_SF: Record<string, number> = { A_SF: -2, V_SF: -1, Hz_SF: -2, W_SF: 0, VA_SF: 0, VAR_SF: 0, PF_SF: -3, TotWh_SF: 0, TotVAh_SF: 0, TotVArh_SF: 0 };
const SIM_PV_SF: Record<string, number> = { A_SF: -2, V_SF: -1, W_SF: 0, Hz_SF: -2, VA_SF: 0, VAr_SF: 0, PF_SF: 0, WH_SF: 0, DCA_SF: -2, DCV_SF: -1, DCW_SF: 0, Tmp_SF: -1 };

class ModbusException extends Error {
  constructor(readonly modbusErrorCode: number, msg: string) {
    super(msg);
  }
}

/** A register image of `SunS`, model 1, one measurement model and the end model. */
function image(base: number, unitId: number, model: number, identity: { Mn: string; Md: string; SN: string }): { regs: Uint16Array; at: ModelLayout; address: number; end: number; put: (p: string, v: number | string | undefined, sf?: Record<string, number>) => void } {
  const common = modelLayout(1)!;
  const layout = modelLayout(model);
  if (!layout) throw new Error(`no SunSpec definition for model ${model}`);
  const regs = new Uint16Array(0x10000);
  regs[base] = 0x5375;
  regs[base + 1] = 0x6e53;
  const commonAt = base + 2;
  const address = commonAt + 2 + common.length;
  const end = address + 2 + layout.length;
  for (const [m, at] of [[common, commonAt], [layout, address]] as const) {
    regs[at] = m.id;
    regs[at + 1] = m.length;
    for (const p of m.points) if (p.offset >= 2) regs.set(sentinelRegs(p.def.type, p.def.size), at + p.offset);
  }
  regs[end] = 0xffff;
  regs[end + 1] = 0;
  const putIn = (m: ModelLayout, at: number, p: string, v: number | string | undefined, sf: Record<string, number> = {}): void => {
    const lp = m.byName.get(p);
    if (!lp) return;
    const s = lp.def.sf ? sf[lp.def.sf] ?? 0 : 0;
    // float32 points carry the value itself (encodePoint would round it to an integer)
    const scaled = typeof v === 'number' && lp.def.type !== 'sunssf' && lp.def.type !== 'float32';
    regs.set(scaled ? encodePoint(lp, v, s) : encodeRaw(lp.def.type, v, lp.def.size), at + lp.offset);
  };
  putIn(common, commonAt, 'Mn', identity.Mn);
  putIn(common, commonAt, 'Md', identity.Md);
  putIn(common, commonAt, 'SN', identity.SN);
  putIn(common, commonAt, 'DA', unitId);
  return { regs, at: layout, address, end: end + 2, put: (p, v, sf) => putIn(layout, address, p, v, sf) };
}

function device(o: { base: number; unitId: number; model: number; sf: Record<string, number>; sync: (put: (p: string, v: number | undefined) => void) => void; identity: { Mn: string; Md: string; SN: string } }): SimModbusDevice {
  const img = image(o.base, o.unitId, o.model, o.identity);
  const faults: SimModbusFaults = { overrides: new Map(), unimplemented: new Set() };
  const dev: SimModbusDevice = {
    unitId: o.unitId,
    faults,
    requestCount: 0,
    model: o.model,
    base: o.base,
    addressOf(point) {
      const lp = img.at.byName.get(point);
      if (!lp) throw new Error(`model ${o.model} has no point ${point}`);
      return img.address + lp.offset;
    },
    vector: undefined as unknown as IServiceVector,
  };
  const sync = (): void => {
    o.sync((p, v) => img.put(p, faults.unimplemented.has(p) ? undefined : v, o.sf));
  };
  const read = (address: number, count: number): number[] => {
    if (count < 1 || count > 125) throw new ModbusException(3, `count ${count}`);
    if (address < o.base || address + count > img.end) throw new ModbusException(2, `registers ${address}..${address + count - 1} are outside the SunSpec map`);
    sync();
    const out = Array.from(img.regs.subarray(address, address + count));
    for (let i = 0; i < count; i++) {
      const v = faults.overrides.get(address + i);
      if (v !== undefined) out[i] = v & 0xffff;
    }
    return out;
  };
  type Cb<T> = (err: Error | null, v: T) => void;
  const answer = <T>(cb: Cb<T>, fn: () => T): void => {
    dev.requestCount++;
    if (faults.silent) return;
    if (faults.dropRequests && faults.dropRequests > 0) {
      faults.dropRequests--;
      return;
    }
    try {
      if (faults.exception) throw new ModbusException(faults.exception, 'injected');
      cb(null, fn());
    } catch (e) {
      cb(e instanceof ModbusException ? e : new ModbusException(4, String(e)), undefined as T);
    }
  };
  dev.vector = {
    getMultipleHoldingRegisters: (address: number, length: number, _unit: number, cb: Cb<number[]>) => answer(cb, () => read(address, length)),
    getHoldingRegister: (address: number, _unit: number, cb: Cb<number>) => answer(cb, () => read(address, 1)[0]),
    // a meter takes no writes
    setRegisterArray: (_a: number, _v: number[], _unit: number, cb: Cb<void>) => answer(cb, () => {
      throw new ModbusException(2, 'read-only device');
    }),
    setRegister: (_a: number, _v: number, _unit: number, cb: Cb<void>) => answer(cb, () => {
      throw new ModbusException(2, 'read-only device');
    }),
  } as IServiceVector;
  return dev;
}

/** A simulated SunSpec grid meter. */
export function createSimMeterDevice(o: SimMeterDeviceOptions): SimModbusDevice {
  const model = o.model ?? 203;
  if (![201, 202, 203, 204, 211, 212, 213, 214].includes(model)) throw new Error(`simulated meter: model ${model} is not a SunSpec meter model (201–204, 211–214)`);
  const float = model >= 211;
  const sf = { ...SIM_METER_SF, ...(o.scaleFactors ?? {}) };
  const phases = model % 10 === 1 ? 1 : model % 10 === 2 ? 2 : 3;
  const sync = (put: (p: string, v: number | undefined) => void): void => {
    const r = o.read();
    const sign = o.exportPositive ? -1 : 1;
    if (!float) for (const [k, v] of Object.entries(sf)) put(k, v);
    const wput = put;
    const currents = r.phaseCurrentsA.slice(0, phases);
    while (currents.length < phases) currents.push(0);
    const sumA = currents.reduce((a, b) => a + b, 0);
    wput('A', sumA);
    const names = ['A', 'B', 'C'];
    currents.forEach((a, i) => {
      wput(`Aph${names[i]}`, a);
      wput(`PhVph${names[i]}`, 230);
      // per-phase power in proportion to the currents
      wput(`Wph${names[i]}`, sumA > 0 ? (sign * r.gridPowerW * a) / sumA : 0);
    });
    wput('PhV', 230);
    wput('Hz', 50);
    wput('W', sign * r.gridPowerW);
    const imp = Math.round(o.exportPositive ? r.exportedWh : r.importedWh);
    const exp = Math.round(o.exportPositive ? r.importedWh : r.exportedWh);
    // acc32 0 is "not implemented": a new meter's counters start at 1 Wh
    wput('TotWhImp', Math.max(1, imp));
    wput('TotWhExp', Math.max(1, exp));
    wput('Evt', 0);
  };
  return device({
    base: o.base ?? 40000,
    unitId: o.unitId ?? 2,
    model,
    sf: float ? {} : sf,
    sync,
    identity: { Mn: 'Wallbox Sim', Md: `SIM-METER-${model}`, SN: `SIMM${model}` },
  });
}

/** A simulated PV inverter (SunSpec 101–103): `W` is its AC output, positive when producing. */
export function createSimPvDevice(o: SimPvDeviceOptions): SimModbusDevice {
  const model = o.model ?? 103;
  if (![101, 102, 103].includes(model)) throw new Error(`simulated PV inverter: model ${model} is not 101–103`);
  return device({
    base: o.base ?? 40000,
    unitId: o.unitId ?? 3,
    model,
    sf: SIM_PV_SF,
    sync: (put) => {
      for (const [k, v] of Object.entries(SIM_PV_SF)) put(k, v);
      const w = o.read();
      put('W', w);
      put('A', w / 230);
      put('PhVphA', 230);
      put('Hz', 50);
      put('St', w > 0 ? 4 : 2); // MPPT / SLEEPING
    },
    identity: { Mn: 'Wallbox Sim', Md: `SIM-PV-${model}`, SN: `SIMP${model}` },
  });
}

export interface SimModbusGateway {
  port: number;
  /** Requests for a unit no device answers to (left unanswered, as on a bus). */
  unknownUnitRequests: number;
  /** TCP connections accepted so far (one per bus when the clients share it). */
  connections: number;
  close(): Promise<void>;
}

/**
 * One service vector answering for several devices by unit id (for a server with unit id 255, TCP or
 * serial): a request for a unit no device answers to gets no answer, as on a bus.
 */
export function unitRouter(devices: { unitId: number; vector: IServiceVector }[], onUnknown: (unit: number) => void = () => undefined): IServiceVector {
  const byUnit = new Map(devices.map((d) => [d.unitId, d.vector]));
  if (byUnit.size !== devices.length) throw new Error(`simulated bus: two devices share a unit id (${devices.map((d) => d.unitId).join(', ')})`);
  type Cb = (err: Error | null, v?: unknown) => void;
  type Vec = Record<string, (...args: unknown[]) => void>;
  // modbus-serial picks the callback style by each handler's arity: these keep the devices' arities
  const target = (unit: number, name: string): ((...args: unknown[]) => void) | undefined => {
    const fn = (byUnit.get(unit) as unknown as Vec | undefined)?.[name];
    if (!fn) onUnknown(unit);
    return fn;
  };
  return {
    getMultipleHoldingRegisters: (address: number, length: number, unit: number, cb: Cb) => target(unit, 'getMultipleHoldingRegisters')?.(address, length, unit, cb),
    getHoldingRegister: (address: number, unit: number, cb: Cb) => target(unit, 'getHoldingRegister')?.(address, unit, cb),
    setRegisterArray: (address: number, values: number[], unit: number, cb: Cb) => target(unit, 'setRegisterArray')?.(address, values, unit, cb),
    setRegister: (address: number, value: number, unit: number, cb: Cb) => target(unit, 'setRegister')?.(address, value, unit, cb),
  } as unknown as IServiceVector;
}

/**
 * Serve devices on one Modbus TCP port, each on its own unit id (a TCP gateway in front of an RS-485 bus).
 * A request for a unit nobody answers to gets no answer, as on the bus. `port` must be free.
 */
export async function startSimModbusGateway(o: { port: number; host?: string; devices: { unitId: number; vector: IServiceVector }[] }): Promise<SimModbusGateway> {
  const host = o.host ?? '127.0.0.1';
  const gw = { port: o.port, unknownUnitRequests: 0, connections: 0 };
  const vector = unitRouter(o.devices, () => gw.unknownUnitRequests++);
  // unit 255: the server hands every unit id to the vector, which routes it
  const tcp = new ServerTCP(vector, { host, port: o.port, unitID: 255 });
  await new Promise<void>((resolve, reject) => {
    tcp.on('initialized', () => resolve());
    tcp.on('serverError', (e: Error | null) => reject(new Error(`simulated Modbus gateway on ${host}:${o.port}: ${e?.message ?? 'listen failed'}`)));
  });
  tcp.on('socketError', () => undefined);
  tcp.on('error', () => undefined);
  (tcp as unknown as { _server: import('node:net').Server })._server.on('connection', () => gw.connections++);
  let closed = false;
  return Object.assign(gw, {
    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  });
}
