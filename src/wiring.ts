/**
 * Chooses the drivers named in the config and builds the ports; simulated hardware comes from one
 * simulated home so the inverter, the car and the GPIO lines agree with each other.
 */
import type { Clock, EStopPort, EStopState, GridSensePort, GridSenseState, Ports, PortFault, RelayPort, RelayState, Unsubscribe } from '../hal/ports.ts';
import { SimSite } from '../hal/sim/site.ts';
import { createSunspecInverter } from '../hal/inverter/sunspec/index.ts';
import { createCanInverter, parseCanConfig, vehicleLinkFacts } from '../hal/inverter/can/index.ts';
import { startSimCanHome } from '../hal/sim/can-home.ts';
import { startSimSunspecServer } from '../hal/sim/sunspec-server.ts';
import { startSimSiteGateway } from '../hal/sim/meter-gateway.ts';
import { createSiteMeter } from '../hal/meter/index.ts';
import { ModbusBuses } from '../hal/modbus/bus.ts';
import { EverestVehicleLink, everestOptionsFromConfig } from '../hal/vehicle/everest.ts';
import { startSimEverestBridge } from '../hal/sim/everest-bridge.ts';
import { openGpioPorts, type GpioFactory } from '../hal/gpio/onoff.ts';
import type { GpioPorts } from '../hal/gpio/wiring.ts';
import type { Config } from './config/types.ts';
import { ConfigError } from './config/load.ts';
import { zoneOf } from './homeowner/overrides.ts';

export interface Hardware {
  ports: Ports;
  /** The simulated home, when any driver is simulated. */
  site?: SimSite;
  /** Stop simulators and servers started for the ports. */
  close(): Promise<void>;
  /** One line per simulated piece, for the start-up banner. */
  describe: string[];
  /** The status LED, when one is wired. */
  statusLed?: { setStatus(status: 'ok' | 'backup' | 'fault'): void };
}

export function needsSimulation(c: Config): boolean {
  const sim = c.simulation;
  const simCan = c.inverter.driver === 'can-bms' && (c.inverter.can as { interface?: unknown } | undefined)?.interface === 'sim';
  return c.inverter.driver === 'sim' || simCan || c.vehicleLink.driver === 'sim' || c.gpio.driver === 'sim' || sim.serveInverter === true || sim.serveBridge === true || sim.serveMeter === true || c.siteMeter?.driver === 'sim';
}

/** The simulated home; every value comes from the config (defaults: config/default.json, stated once). */
export function simulatedSite(c: Config, clock: Clock): SimSite {
  const s = c.simulation;
  return new SimSite({
    clock,
    vehicle: { ...s.vehicle },
    inverter: { ...s.inverter },
    houseLoadW: s.houseLoadW,
    sheddableLoadsW: [...s.sheddableLoadsW],
    phases: c.site.phases,
    chargerPhases: c.site.chargerPhases,
    gridSenseDebounceMs: (c.gpio.gridSense as { debounceMs?: number } | undefined)?.debounceMs ?? 10,
    pv: s.pv ? { ...s.pv, timeZone: zoneOf(c) } : undefined,
  });
}

/** The start-up banner's line for the site meter. */
function siteMeterLine(c: Config): string {
  const m = c.siteMeter;
  if (!m) return `site meter: none (the import limit assumes ${c.site.assumedHouseLoadW} W of house)`;
  if (m.driver === 'sim') return 'site meter: simulated, in process';
  if (m.driver === 'mqtt') return `site meter: MQTT ${m.topic}${m.path ? ` (${m.path})` : ''} on ${String(m.url).replace(/\/\/[^@/]*@/, '//')}`;
  const l = (m.modbus ?? {}) as Record<string, unknown>;
  return `site meter: SunSpec over ${typeof l.path === 'string' ? `Modbus RTU ${l.path}` : `Modbus TCP ${l.host}:${l.port ?? 502}`} unit ${l.unitId ?? 1}${m.pv ? ', with a PV source' : ''}`;
}

export interface BuildOptions {
  /** Replaces onoff's Gpio constructor (a stand-in for a line that is busy or not permitted, in tests). */
  gpioFactory?: GpioFactory;
}

/**
 * Build the ports the config names. A driver that cannot be built (a simulator whose port is taken, a bad
 * section) rejects, after everything already started has been closed, so the process can exit instead of
 * hanging on a timer; GPIO lines that cannot be claimed do not reject: see {@link deferredGpio}.
 */
export async function buildHardware(c: Config, clock: Clock, log: (msg: string) => void, opts: BuildOptions = {}): Promise<Hardware> {
  const closers: (() => Promise<void> | void)[] = [];
  try {
    return await build(c, clock, log, opts, closers);
  } catch (e) {
    for (const fn of closers.reverse()) {
      try {
        await fn();
      } catch {
        // keep closing the rest; the build error is the one to report
      }
    }
    throw e;
  }
}

async function build(c: Config, clock: Clock, log: (msg: string) => void, opts: BuildOptions, closers: (() => Promise<void> | void)[]): Promise<Hardware> {
  const site = needsSimulation(c) ? simulatedSite(c, clock) : undefined;
  const describe: string[] = [];
  const simPorts = site?.ports();
  if (site) {
    site.startPhysics(250);
    closers.push(() => site.stopPhysics());
  }
  // one connection per RS-485 line or TCP gateway, shared by the inverter and the site meter
  const buses = new ModbusBuses(clock, (m) => log(m));
  if (site && c.simulation?.serveMeter) {
    // the simulated meter (and inverter, and PV) as SunSpec devices behind one port, read through the real drivers
    const sm = c.siteMeter?.driver === 'sunspec' ? c.siteMeter : undefined;
    const unit = (m: Record<string, unknown> | undefined, dflt: number) => (typeof m?.unitId === 'number' ? m.unitId : dflt);
    const served = await startSimSiteGateway({
      port: c.simulation.servePort, site, clock, inverter: c.simulation.serveInverter === true,
      meterUnitId: unit(sm?.modbus, 2), meterModel: c.simulation.meterModel ?? 203, pvUnitId: sm?.pv ? unit(sm.pv.modbus, 3) : undefined,
    });
    closers.push(() => served.close());
    describe.push(...served.describe);
  }

  let inverter: Ports['inverter'];
  switch (c.inverter.driver) {
    case 'sim':
      inverter = simPorts!.inverter;
      describe.push(`inverter: simulated ${site!.inverter.ratedW} W, in process`);
      break;
    case 'sunspec': {
      const modbus = (c.inverter.modbus ?? {}) as Record<string, unknown>;
      if (site && c.simulation?.serveInverter && !c.simulation.serveMeter) {
        // the simulated inverter, served as a SunSpec device on loopback and read through the real driver
        const port = c.simulation.servePort;
        const server = await startSimSunspecServer({ port, host: '127.0.0.1', inverter: site.inverter, car: site.car, clock });
        closers.push(() => server.close());
        describe.push(`inverter: simulated ${site.inverter.ratedW} W served as SunSpec Modbus TCP on 127.0.0.1:${port}`);
      }
      // a site meter on the same bus (host:port or serial path) shares this connection
      inverter = createSunspecInverter(c.inverter, clock, (m) => log(m), buses);
      describe.push(`inverter: SunSpec over ${typeof modbus.path === 'string' ? `Modbus RTU ${modbus.path}` : `Modbus TCP ${modbus.host}:${modbus.port}`}`);
      break;
    }
    case 'can-bms': {
      let can: ReturnType<typeof parseCanConfig>;
      try {
        can = parseCanConfig(c.inverter.can);
      } catch (e) {
        throw new ConfigError([(e as Error).message], 'config');
      }
      const efficiency = (c.inverter.efficiency as number | undefined) ?? 0.95;
      // the car's SoC and power from the vehicle link (built below; read only once the port is open)
      let car = vehicleLinkFacts({ state: () => vehicle.state() });
      let channel;
      if (can.interface === 'sim') {
        const home = await startSimCanHome(site!, clock, can, { efficiency });
        closers.push(() => home.stop());
        ({ channel, facts: car } = home);
        describe.push(`inverter: simulated ${can.ratedW} W hybrid inverter on an in-memory CAN bus`);
      }
      inverter = createCanInverter(can, { clock, car, efficiency, socMaxAgeMs: c.control.socMaxAgeS * 1000, log: (m) => log(m), channel });
      describe.push(`inverter: CAN BMS profile ${can.profile.name} on ${can.interface}`);
      break;
    }
    default:
      // a config error (exit 78), not a start-up failure systemd would retry every few seconds
      throw new ConfigError([`inverter.driver: "${c.inverter.driver}" is not available in this build`], 'config');
  }

  let vehicle: Ports['vehicle'];
  switch (c.vehicleLink.driver) {
    case 'sim':
      vehicle = simPorts!.vehicle;
      describe.push(`vehicle: simulated car ${site!.car.capacityWh} Wh at ${site!.car.socPct} %, in process`);
      break;
    case 'everest': {
      if (site && c.simulation?.serveBridge) {
        const bridge = await startSimEverestBridge({ url: c.vehicleLink.url, evseId: c.vehicleLink.evseId, car: site.car, clock });
        closers.push(() => bridge.stop());
        describe.push(`vehicle: simulated car published as an EVerest bridge on ${c.vehicleLink.url}`);
      }
      vehicle = new EverestVehicleLink(everestOptionsFromConfig(c.vehicleLink as Parameters<typeof everestOptionsFromConfig>[0], clock, (level, m) => log(`${level}: ${m}`)));
      describe.push(`vehicle: EVerest API on ${c.vehicleLink.url}, EVSE ${c.vehicleLink.evseId}`);
      break;
    }
    default:
      throw new ConfigError([`vehicleLink.driver: "${c.vehicleLink.driver}" is not available in this build`], 'config');
  }

  let gpio: Pick<Ports, 'gridSense' | 'relays' | 'estop'> = {};
  let statusLed: Hardware['statusLed'];
  switch (c.gpio.driver) {
    case 'sim':
      gpio = { gridSense: simPorts!.gridSense, relays: simPorts!.relays, estop: simPorts!.estop };
      describe.push(`gpio: simulated lines (${site!.sheddableLoadsW.length} load-shed tiers)`);
      break;
    case 'none':
      describe.push('gpio: none (no grid sense, contactor or load shedding: backup disabled)');
      break;
    case 'onoff': {
      const g = deferredGpio(c, clock, opts.gpioFactory);
      gpio = { gridSense: g.gridSense, relays: g.relays, estop: g.estop };
      statusLed = g.statusLed;
      closers.push(() => g.close());
      describe.push(`gpio: board lines through onoff${g.claimError ? ` (not claimed yet: ${g.claimError})` : ''}`);
      break;
    }
  }

  const siteMeter = createSiteMeter(c.siteMeter, { clock, log: (m) => log(m), buses, simMeter: simPorts?.siteMeter });
  describe.push(siteMeterLine(c));

  return {
    ports: { clock, inverter, vehicle, ...gpio, siteMeter },
    site,
    describe,
    statusLed,
    close: async () => {
      for (const fn of closers.reverse()) await fn();
    },
  };
}

/**
 * GPIO ports that survive lines that cannot be claimed at start (busy, not permitted, not exported yet).
 * onoff claims a line when it is constructed, so a busy line would otherwise throw out of the build and end
 * the process; under `Restart=always` that is a restart loop with the contactor line unowned. Instead each
 * wired role gets a port whose `open()` claims the lines (all of them, once) and rejects with the cause while
 * it cannot: the runtime reports that as a fault, stays in its safe state and retries the open. Until the
 * lines are claimed the ports report a fault and command nothing: the contactor coil is not driven, which
 * on the wiring docs/gpio.md describes leaves it open (de-energised), the safe side of invariant 5.
 */
export function deferredGpio(c: Config, clock: Clock, gpioFactory?: GpioFactory): {
  gridSense?: GridSensePort; relays?: RelayPort; estop?: EStopPort; statusLed?: Hardware['statusLed']; claimError?: string; close(): Promise<void>;
} {
  let real: GpioPorts | undefined;
  let lastError: string | undefined;
  let sinceMs = clock.nowMs();
  let closed = false;
  const claim = (): GpioPorts => {
    if (real) return real;
    if (closed) throw new Error('GPIO ports are closed');
    try {
      real = openGpioPorts(c.gpio, clock, { gpioFactory });
      lastError = undefined;
      return real;
    } catch (e) {
      lastError = (e as Error)?.message ?? String(e);
      throw e;
    }
  };
  try {
    claim();
  } catch {
    sinceMs = clock.nowMs();
  }
  const fault = (): PortFault => ({ code: 'open_failed', message: lastError ?? 'GPIO lines not claimed yet', sinceMs });
  const g = c.gpio as Record<string, unknown>;

  function deferred<P extends GridSensePort | RelayPort | EStopPort>(pick: (r: GpioPorts) => P | undefined): { port: () => P | undefined; listeners: Set<() => void>; attached: Map<() => void, Unsubscribe>; open(): Promise<void> } {
    const listeners = new Set<() => void>();
    const attached = new Map<() => void, Unsubscribe>();
    let opened = false;
    return {
      port: () => (real && opened ? pick(real) : undefined),
      listeners,
      attached,
      async open() {
        const p = pick(claim());
        if (!p) throw new Error('GPIO wiring has no line for this role');
        await p.open();
        opened = true;
        for (const l of listeners) if (!attached.has(l)) attached.set(l, p.onChange(l));
      },
    };
  }
  const onChange = (d: { port: () => unknown; listeners: Set<() => void>; attached: Map<() => void, Unsubscribe> }, listener: () => void): Unsubscribe => {
    d.listeners.add(listener);
    const p = d.port() as { onChange(l: () => void): Unsubscribe } | undefined;
    if (p) d.attached.set(listener, p.onChange(listener));
    return () => {
      d.listeners.delete(listener);
      d.attached.get(listener)?.();
      d.attached.delete(listener);
    };
  };

  const out: ReturnType<typeof deferredGpio> = {
    claimError: lastError,
    async close() {
      closed = true;
      const r = real;
      real = undefined;
      await r?.close();
    },
  };
  if (g.gridSense !== undefined) {
    const d = deferred((r) => r.gridSense);
    out.gridSense = {
      kind: 'grid-sense',
      open: () => d.open(),
      state: (): GridSenseState => d.port()?.state() ?? { fault: fault() },
      close: async () => d.port()?.close(),
      onChange: (l) => onChange(d, l),
    };
  }
  if (g.contactor !== undefined) {
    const d = deferred((r) => r.relays);
    out.relays = {
      kind: 'relays',
      open: () => d.open(),
      state: (): RelayState => d.port()?.state() ?? { contactorCommandClosed: false, loadTiersOn: [], fault: fault() },
      // unclaimed: no line to drive, nothing is commanded (ports never reject after open; this one never opened)
      setContactor: async (closedWanted) => d.port()?.setContactor(closedWanted),
      setLoadTier: async (i, on) => d.port()?.setLoadTier(i, on),
      close: async () => d.port()?.close(),
      onChange: (l) => onChange(d, l),
    };
  }
  if (g.estop !== undefined) {
    const d = deferred((r) => r.estop);
    out.estop = {
      kind: 'estop',
      open: () => d.open(),
      // unknown is not released: an e-stop that cannot be read counts as pressed (zero power, fault), and
      // the fault names the line that could not be claimed
      state: (): EStopState => d.port()?.state() ?? { pressed: true, fault: fault() },
      close: async () => d.port()?.close(),
      onChange: (l) => onChange(d, l),
    };
  }
  if (g.statusLed !== undefined) out.statusLed = { setStatus: (st) => real?.statusLed?.setStatus(st) };
  return out;
}
