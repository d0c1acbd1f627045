/**
 * The simulated inverter served as a SunSpec device over real Modbus TCP (modbus-serial's ServerTCP),
 * on 127.0.0.1. Models 1, 701, 702, 704, 713 by default; the device map (base, model order, lengths,
 * unknown vendor models, 124 / 802 / 703) is configurable so drivers can be tried on unexpected layouts.
 *
 * Live values come from the SimInverter and SimCar at each request; writes to 704 WSet, 124 InWRte/OutWRte
 * and 702 IntIslandCat command the SimInverter. The 704 and 124 reversion timeouts run on the injected
 * clock: when the writes stop, the inverter falls back to the reversion power by itself.
 */
import * as modbusSerial from 'modbus-serial';
import type { ServerTCP as ServerTCPType, IServiceVector } from 'modbus-serial/ServerTCP.js';
import type { Clock } from '../ports.ts';
import { decodePoints, encodePoint, encodeRaw, modelLayout, sentinelRegs, type ModelLayout } from '../inverter/sunspec/codec.ts';
import type { SimCar } from './car.ts';
import type { SimInverter } from './inverter.ts';

// the package is CommonJS; its module object carries the server class
const ServerTCP = (modbusSerial as unknown as { ServerTCP: typeof ServerTCPType }).ServerTCP;

export interface SunspecMapModel {
  id: number;
  /** L to report; defaults to the model's defined length (model 1 may be 65, the legacy length). */
  length?: number;
  /** A model this server has no definition for (a vendor model): served as `fill` registers. */
  unknown?: boolean;
  fill?: number;
}

export interface SunspecDeviceMap {
  /** Register of the `SunS` marker (0-based PDU address). */
  base: number;
  /** Unit id the server answers to (requests to others get no answer, as on a shared bus). Default 1. */
  unitId?: number;
  models: SunspecMapModel[];
}

export const DEFAULT_DEVICE_MAP: SunspecDeviceMap = {
  base: 40000,
  unitId: 1,
  models: [{ id: 1 }, { id: 701 }, { id: 702 }, { id: 704 }, { id: 713 }],
};

/** Check a device map read from JSON; throws naming the bad field. */
export function parseDeviceMap(json: unknown): SunspecDeviceMap {
  const o = json as Record<string, unknown>;
  if (!o || typeof o !== 'object') throw new Error('device map: not an object');
  const int = (v: unknown, path: string, lo: number, hi: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new Error(`device map: ${path} must be an integer ${lo}..${hi}, got ${JSON.stringify(v)}`);
    return v;
  };
  const base = int(o.base, 'base', 0, 65533);
  const unitId = o.unitId === undefined ? undefined : int(o.unitId, 'unitId', 0, 255);
  if (!Array.isArray(o.models) || o.models.length === 0) throw new Error('device map: models must be a non-empty array');
  const models = o.models.map((m: unknown, i: number): SunspecMapModel => {
    const mm = m as Record<string, unknown>;
    const id = int(mm?.id, `models[${i}].id`, 1, 65534);
    const unknown = mm.unknown === true;
    const length = mm.length === undefined ? undefined : int(mm.length, `models[${i}].length`, 0, 65535);
    if (!unknown && !modelLayout(id)) throw new Error(`device map: models[${i}] is model ${id}, which has no definition here; mark it "unknown": true with a length`);
    if (unknown && length === undefined) throw new Error(`device map: models[${i}] (unknown model ${id}) needs a length`);
    const fill = mm.fill === undefined ? undefined : int(mm.fill, `models[${i}].fill`, 0, 65535);
    return { id, length, unknown, fill };
  });
  let end = base + 2;
  for (const m of models) end += 2 + (m.length ?? modelLayout(m.id)!.length);
  if (end + 2 > 65536) throw new Error(`device map: the chain ends at ${end + 2}, past register 65535`);
  return { base, unitId, models };
}

export interface SimSunspecServerOptions {
  port: number;
  host?: string;
  inverter: SimInverter;
  car: SimCar;
  clock: Clock;
  deviceMap?: SunspecDeviceMap;
  identity?: { manufacturer?: string; model?: string; version?: string; serialNumber?: string };
}

/** Fault injection for tests. */
export interface SimSunspecFaults {
  /** Answer nothing (the device hangs; clients time out). */
  silent?: boolean;
  /** Answer every request with this Modbus exception code. */
  exception?: number;
  /** Registers to serve with these raw values instead of the live ones (garbage injection). */
  overrides: Map<number, number>;
  /** Leave this many of the next requests unanswered (a lost frame), then answer again. */
  dropRequests?: number;
  /** Answer after this long (a slow device), ms of real time. */
  delayMs?: number;
}

export interface SimSunspecServer {
  port: number;
  deviceMap: SunspecDeviceMap;
  faults: SimSunspecFaults;
  /** Requests answered or refused so far. */
  requestCount: number;
  /** Most requests the device had in hand at once (it is 1 when the client waits for each answer). */
  maxInFlight: number;
  /** Times a reversion timeout took the setpoint back to its reversion value. */
  reversions: number;
  /** Address of a point's first register. */
  addressOf(model: number, point: string): number;
  /** The registers as a client would read them now. */
  registers(address: number, count: number): number[];
  close(): Promise<void>;
}

interface Placed {
  id: number;
  address: number;
  length: number;
  layout?: ModelLayout;
}

class ModbusException extends Error {
  constructor(readonly modbusErrorCode: number, msg: string) {
    super(msg);
  }
}

/** Fixed scale factors this device uses (negative and positive ones, to exercise scaling). */
const SF = {
  701: { A_SF: -2, V_SF: -1, Hz_SF: -3, W_SF: 0, PF_SF: -3, VA_SF: 0, Var_SF: 0, TotWh_SF: 0, TotVarh_SF: 0, Tmp_SF: -1 },
  702: { W_SF: 0, PF_SF: -3, VA_SF: 0, Var_SF: 0, V_SF: -1, A_SF: -1, S_SF: 0 },
  704: { PF_SF: -3, WMaxLimPct_SF: 0, WSet_SF: -1, WSetPct_SF: -1, VarSet_SF: 0, VarSetPct_SF: 0 },
  713: { WH_SF: 1, Pct_SF: -1 },
  124: { WChaMax_SF: 0, WChaDisChaGra_SF: 0, VAChaMax_SF: 0, MinRsvPct_SF: 0, ChaState_SF: -1, StorAval_SF: 0, InBatV_SF: -1, InOutWRte_SF: -1 },
  802: { AHRtg_SF: 0, WHRtg_SF: 1, WChaDisChaMax_SF: 0, DisChaRte_SF: 0, SoC_SF: -1, DoD_SF: 0, SoH_SF: 0, V_SF: -1, CellV_SF: -3, A_SF: -1, AMax_SF: 0, W_SF: 0 },
} as Record<number, Record<string, number>>;

const INV_ST: Record<string, number> = { off: 0, sleeping: 1, starting: 2, running: 3, throttled: 4, 'shutting-down': 5, fault: 6, standby: 7 };

export type SimSunspecDeviceOptions = Omit<SimSunspecServerOptions, 'port' | 'host'>;

/** The simulated device without a transport: its register map and the Modbus service vector serving it. */
export interface SimSunspecDevice extends Omit<SimSunspecServer, 'port' | 'close'> {
  vector: IServiceVector;
  unitId: number;
  /** Stop the device's timers. */
  stop(): void;
}

/** Build the register map and the service vector; any modbus-serial server (TCP or serial) can serve it. */
export function createSimSunspecDevice(o: SimSunspecDeviceOptions): SimSunspecDevice {
  const map = o.deviceMap ? parseDeviceMap(o.deviceMap) : DEFAULT_DEVICE_MAP;
  const inv = o.inverter;
  const car = o.car;
  const clock = o.clock;
  const image = new Uint16Array(0x10000);
  const writable = new Uint8Array(0x10000);
  const placed: Placed[] = [];
  const faults: SimSunspecFaults = { overrides: new Map() };

  // --- build the map ----------------------------------------------------------------------------
  image[map.base] = 0x5375;
  image[map.base + 1] = 0x6e53;
  let addr = map.base + 2;
  for (const m of map.models) {
    const layout = m.unknown ? undefined : modelLayout(m.id);
    const length = m.length ?? layout!.length;
    placed.push({ id: m.id, address: addr, length, layout });
    image[addr] = m.id;
    image[addr + 1] = length;
    if (layout) {
      for (const p of layout.points) {
        if (p.offset < 2 || p.offset + p.def.size > 2 + length) continue;
        image.set(sentinelRegs(p.def.type, p.def.size), addr + p.offset);
        if (p.def.access === 'RW') writable.fill(1, addr + p.offset, addr + p.offset + p.def.size);
      }
    } else {
      image.fill(m.fill ?? 0, addr + 2, addr + 2 + length);
    }
    addr += 2 + length;
  }
  image[addr] = 0xffff;
  image[addr + 1] = 0;
  const chainEnd = addr + 2;

  const byId = (id: number): Placed | undefined => placed.find((p) => p.id === id && p.layout);
  const put = (id: number, point: string, value: number | string | undefined, raw = false): void => {
    const m = byId(id);
    if (!m) return;
    const lp = m.layout!.byName.get(point);
    if (!lp || lp.offset + lp.def.size > 2 + m.length) return;
    const sf = lp.def.sf ? SF[id]?.[lp.def.sf] ?? 0 : 0;
    const regs = raw || typeof value !== 'number' ? encodeRaw(lp.def.type, value, lp.def.size) : encodePoint(lp, value, sf);
    image.set(regs, m.address + lp.offset);
  };
  const get = (id: number, names: string[]): Record<string, number | string | undefined> => {
    const m = byId(id)!;
    return decodePoints(m.layout!, (off) => (off < 2 + m.length ? image[m.address + off] : undefined), names).values;
  };

  for (const [id, sfs] of Object.entries(SF)) for (const [n, v] of Object.entries(sfs)) put(Number(id), n, v, true);
  const ident = o.identity ?? {};
  put(1, 'Mn', ident.manufacturer ?? 'Wallbox Sim');
  put(1, 'Md', ident.model ?? 'SIM-BIDI-11');
  put(1, 'Vr', ident.version ?? '0.1.0');
  put(1, 'SN', ident.serialNumber ?? 'SIM0001');
  put(1, 'DA', map.unitId ?? 1, true);
  put(701, 'ACType', 0, true);
  put(702, 'WMaxRtg', inv.ratedW);
  put(702, 'VAMaxRtg', inv.ratedW);
  put(702, 'WChaRteMaxRtg', inv.maxChargeW);
  put(702, 'WDisChaRteMaxRtg', inv.maxDischargeW);
  put(702, 'VNomRtg', 230);
  put(702, 'AMaxRtg', Math.round((inv.ratedW / 230) * 10) / 10);
  put(702, 'CtrlModes', 1 << 1, true); // FIXED_W
  put(702, 'IntIslandCatRtg', inv.islandCapable ? 1 << 1 : 1 << 0, true);
  put(702, 'IntIslandCat', 1 << 0, true);
  put(702, 'WMax', inv.ratedW);
  put(702, 'WChaRteMax', inv.maxChargeW);
  put(702, 'WDisChaRteMax', inv.maxDischargeW);
  for (const n of ['WSetEna', 'WSetMod', 'WSetEnaRvrt', 'WMaxLimPctEna', 'WMaxLimPctEnaRvrt']) put(704, n, 0, true);
  for (const n of ['WSet', 'WSetRvrt', 'WSetPct', 'WSetPctRvrt', 'WSetRvrtTms', 'WSetRvrtRem', 'WMaxLimPctRvrtTms', 'WMaxLimPctRvrtRem']) put(704, n, 0, true);
  put(704, 'WMaxLimPct', 100);
  put(704, 'WMaxLimPctRvrt', 100);
  put(713, 'SoH', 100);
  put(713, 'Sta', 0, true);
  put(124, 'WChaMax', inv.maxChargeW);
  put(124, 'StorCtl_Mod', 0, true);
  for (const n of ['OutWRte', 'InWRte', 'InOutWRte_WinTms', 'InOutWRte_RvrtTms', 'InOutWRte_RmpTms']) put(124, n, 0, true);
  put(124, 'ChaSt', 6, true);
  put(802, 'WChaRteMax', car.maxChargeW);
  put(802, 'WDisChaRteMax', car.maxDischargeW);
  put(802, 'SoCMax', 100);
  put(802, 'SoCMin', 0);
  put(802, 'State', 3, true);

  // --- live values ------------------------------------------------------------------------------
  let rvrtTimer: unknown;
  let rvrtDeadlineMs: number | undefined;
  let rvrt124Timer: unknown;
  const server: Omit<SimSunspecServer, 'port' | 'close'> = {
    deviceMap: map,
    faults,
    requestCount: 0,
    maxInFlight: 0,
    reversions: 0,
    addressOf(model, point) {
      const m = byId(model);
      const lp = m?.layout?.byName.get(point);
      if (!m || !lp) throw new Error(`model ${model} point ${point} is not in this device map`);
      return m.address + lp.offset;
    },
    registers(address, count) {
      sync();
      return read(address, count);
    },
  };

  function sync(): void {
    // 701 W is positive when the DER generates, i.e. when the car discharges
    const genW = Math.round(-inv.acPowerW);
    put(701, 'St', inv.operatingState === 'off' ? 0 : 1, true);
    put(701, 'InvSt', INV_ST[inv.operatingState] ?? 7, true);
    put(701, 'ConnSt', inv.connected ? 1 : 0, true);
    const alrm = placed.find((p) => p.id === 701)?.layout?.byName.get('Alrm');
    let bits = 0;
    let manufacturer = '';
    for (const a of inv.reportedAlarms()) {
      const s = alrm?.def.symbols?.find((x) => x.name === a);
      if (s) bits |= 1 << s.value;
      else manufacturer = a;
    }
    if (manufacturer) bits |= 1 << 16; // MANUFACTURER_ALRM, named in MnAlrmInfo
    put(701, 'Alrm', bits >>> 0, true);
    put(701, 'MnAlrmInfo', manufacturer || undefined);
    put(701, 'DERMode', inv.gridForming ? 1 << 1 : 1 << 0, true);
    put(701, 'W', genW);
    put(701, 'VA', Math.abs(genW));
    put(701, 'Var', 0);
    put(701, 'PF', genW === 0 ? undefined : 1);
    put(701, 'A', Math.abs(genW) / 230);
    put(701, 'LNV', inv.connected || inv.gridForming ? 230 : 0);
    put(701, 'Hz', inv.connected || inv.gridForming ? 50 : undefined);
    put(701, 'TotWhInj', Math.round(inv.exportedWh));
    put(701, 'TotWhAbs', Math.round(inv.importedWh));
    put(701, 'TmpCab', 35);
    const rem = rvrtDeadlineMs === undefined ? 0 : Math.max(0, Math.ceil((rvrtDeadlineMs - clock.nowMs()) / 1000));
    put(704, 'WSetRvrtRem', rem, true);
    const soc = car.connected ? car.socPct : undefined;
    put(713, 'WHRtg', car.capacityWh);
    put(713, 'WHAvail', soc === undefined ? undefined : (car.capacityWh * soc) / 100);
    put(713, 'SoC', soc);
    put(124, 'ChaState', soc);
    put(124, 'ChaSt', soc === undefined ? 1 : soc >= 100 ? 5 : soc <= 0 ? 2 : inv.acPowerW > 0 ? 4 : inv.acPowerW < 0 ? 3 : 6, true);
    put(802, 'WHRtg', car.capacityWh);
    put(802, 'WChaRteMax', Math.round(car.chargeLimitW()));
    put(802, 'WDisChaRteMax', Math.round(car.dischargeLimitW()));
    put(802, 'SoC', soc);
    put(802, 'ChaSt', soc === undefined ? 1 : inv.acPowerW > 0 ? 4 : inv.acPowerW < 0 ? 3 : 6, true);
  }

  function read(address: number, count: number): number[] {
    const out = Array.from(image.subarray(address, address + count));
    for (let i = 0; i < count; i++) {
      const v = faults.overrides.get(address + i);
      if (v !== undefined) out[i] = v & 0xffff;
    }
    return out;
  }

  function checkRange(address: number, count: number): void {
    if (count < 1 || count > 125) throw new ModbusException(3, `count ${count}`);
    if (address < map.base || address + count > chainEnd) throw new ModbusException(2, `registers ${address}..${address + count - 1} are outside the SunSpec map`);
  }

  function write(address: number, values: number[]): void {
    if (values.length < 1 || values.length > 123) throw new ModbusException(3, `count ${values.length}`);
    for (let i = 0; i < values.length; i++) {
      if (!writable[address + i]) throw new ModbusException(2, `register ${address + i} is not writable`);
    }
    image.set(values.map((v) => v & 0xffff), address);
    const end = address + values.length;
    for (const m of placed) {
      if (!m.layout || end <= m.address || address >= m.address + 2 + m.length) continue;
      const touched = (point: string): boolean => {
        const lp = m.layout!.byName.get(point);
        return !!lp && address < m.address + lp.offset + lp.def.size && end > m.address + lp.offset;
      };
      if (m.id === 704 && ['WSetEna', 'WSetMod', 'WSet', 'WSetPct'].some(touched)) apply704(true);
      else if (m.id === 704 && ['WSetRvrt', 'WSetEnaRvrt', 'WSetRvrtTms'].some(touched)) apply704(false);
      if (m.id === 702 && touched('IntIslandCat')) {
        const v = image[m.address + m.layout.byName.get('IntIslandCat')!.offset];
        void inv.setGridForming(v !== 0xffff && (v & (1 << 1)) !== 0);
      }
      if (m.id === 124 && ['OutWRte', 'InWRte', 'StorCtl_Mod', 'InOutWRte_RvrtTms'].some(touched)) apply124();
    }
  }

  /** 704: put the enabled setpoint in force; a command write restarts the reversion timer. */
  function apply704(command: boolean): void {
    const v = get(704, ['WSetEna', 'WSetMod', 'WSet', 'WSetPct', 'WSetEnaRvrt', 'WSetRvrtTms']);
    let genW = 0;
    if (v.WSetEna === 1) genW = v.WSetMod === 1 ? Number(v.WSet ?? 0) : (Number(v.WSetPct ?? 0) / 100) * inv.ratedW;
    // 704 WSet is negative for charging; the sim's setpoint is positive into the car
    void inv.setPowerW(genW === 0 ? 0 : -genW);
    if (!command) return;
    if (rvrtTimer !== undefined) clock.clearTimer(rvrtTimer);
    rvrtTimer = undefined;
    rvrtDeadlineMs = undefined;
    const tmsS = Number(v.WSetRvrtTms ?? 0);
    if (v.WSetEnaRvrt === 1 && tmsS > 0 && v.WSetEna === 1) {
      rvrtDeadlineMs = clock.nowMs() + tmsS * 1000;
      rvrtTimer = clock.setTimer(revert704, tmsS * 1000);
    }
  }

  function revert704(): void {
    rvrtTimer = undefined;
    rvrtDeadlineMs = undefined;
    server.reversions++;
    const m = byId(704)!;
    const rv = m.layout!.byName.get('WSetRvrt')!;
    const ws = m.layout!.byName.get('WSet')!;
    // WSet takes the reversion value (same scale factor), and that is what is in force now
    image.copyWithin(m.address + ws.offset, m.address + rv.offset, m.address + rv.offset + 2);
    apply704(false);
  }

  /** 124: InWRte / OutWRte as % of WChaMax, with its own reversion timer. */
  function apply124(): void {
    const v = get(124, ['WChaMax', 'StorCtl_Mod', 'InWRte', 'OutWRte', 'InOutWRte_RvrtTms']);
    const refW = Number(v.WChaMax ?? 0);
    const inPct = Number(v.InWRte ?? 0);
    const outPct = Number(v.OutWRte ?? 0);
    const mode = Number(v.StorCtl_Mod ?? 0);
    let w = 0;
    if (mode & 1 && inPct > 0) w = (inPct / 100) * refW;
    else if (mode & 2 && outPct > 0) w = -(outPct / 100) * refW;
    void inv.setPowerW(w);
    if (rvrt124Timer !== undefined) clock.clearTimer(rvrt124Timer);
    rvrt124Timer = undefined;
    const tmsS = Number(v.InOutWRte_RvrtTms ?? 0);
    if (tmsS > 0 && w !== 0) {
      rvrt124Timer = clock.setTimer(() => {
        rvrt124Timer = undefined;
        server.reversions++;
        put(124, 'InWRte', 0);
        put(124, 'OutWRte', 0);
        void inv.setPowerW(0);
      }, tmsS * 1000);
    }
  }

  // a device comes up with its controls disabled, i.e. at 0 W, until a client enables them
  if (byId(704)) apply704(false);
  else if (byId(124)) apply124();

  // --- Modbus vector ----------------------------------------------------------------------------
  type Cb<T> = (err: Error | null, v: T) => void;
  let inFlight = 0;
  const answer = <T>(cb: Cb<T>, fn: () => T): void => {
    server.requestCount++;
    if (faults.silent) return; // never answer: the client's timeout fires
    if (faults.dropRequests && faults.dropRequests > 0) {
      faults.dropRequests--;
      return;
    }
    const respond = (): void => {
      try {
        if (faults.exception) throw new ModbusException(faults.exception, 'injected');
        cb(null, fn());
      } catch (e) {
        cb(e instanceof ModbusException ? e : new ModbusException(4, String(e)), undefined as T);
      }
    };
    inFlight++;
    server.maxInFlight = Math.max(server.maxInFlight, inFlight);
    if (!faults.delayMs) {
      inFlight--;
      respond();
      return;
    }
    setTimeout(() => {
      inFlight--;
      respond();
    }, faults.delayMs);
  };
  const vector: IServiceVector = {
    getMultipleHoldingRegisters: (address: number, length: number, _unit: number, cb: Cb<number[]>) =>
      answer(cb, () => {
        checkRange(address, length);
        sync();
        return read(address, length);
      }),
    getHoldingRegister: (address: number, _unit: number, cb: Cb<number>) =>
      answer(cb, () => {
        checkRange(address, 1);
        sync();
        return read(address, 1)[0];
      }),
    setRegisterArray: (address: number, values: number[], _unit: number, cb: Cb<void>) =>
      answer(cb, () => {
        write(address, values);
      }),
    setRegister: (address: number, value: number, _unit: number, cb: Cb<void>) =>
      answer(cb, () => {
        write(address, [value]);
      }),
  };

  return Object.assign(server, {
    vector,
    unitId: map.unitId ?? 1,
    stop() {
      if (rvrtTimer !== undefined) clock.clearTimer(rvrtTimer);
      if (rvrt124Timer !== undefined) clock.clearTimer(rvrt124Timer);
      rvrtTimer = undefined;
      rvrt124Timer = undefined;
    },
  });
}

/** Start the device on Modbus TCP; resolves once it listens. `port` must be a free port (ServerTCP cannot take 0). */
export async function startSimSunspecServer(o: SimSunspecServerOptions): Promise<SimSunspecServer> {
  const host = o.host ?? '127.0.0.1';
  const device = createSimSunspecDevice(o);
  const tcp = new ServerTCP(device.vector, { host, port: o.port, unitID: device.unitId });
  await new Promise<void>((resolve, reject) => {
    tcp.on('initialized', () => resolve());
    tcp.on('serverError', (e: Error | null) => {
      device.stop();
      reject(new Error(`SunSpec sim server on ${host}:${o.port}: ${e?.message ?? 'listen failed'}`));
    });
  });
  // a client that resets its socket is not a server failure
  tcp.on('socketError', () => undefined);
  tcp.on('error', () => undefined);
  let closed = false;
  return Object.assign(device, {
    port: o.port,
    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      device.stop();
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  });
}
