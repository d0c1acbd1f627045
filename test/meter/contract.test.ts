/**
 * The site meter port contract (test/contract/meter-contract.ts) against every back-end: the simulated
 * site's meter (in process, virtual clock), the SunSpec driver reading a simulated meter and PV inverter
 * over real Modbus TCP, and the MQTT driver on a real broker (virtual clock for the age limit).
 */
import { after, before } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { meterContract } from '../contract/meter-contract.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { createSimMeterDevice, createSimPvDevice, startSimModbusGateway, type SimMeterReading } from '../../hal/sim/meter-server.ts';
import { createSiteMeter } from '../../hal/meter/index.ts';
import { ModbusBuses } from '../../hal/modbus/bus.ts';
import { MqttMeter } from '../../hal/meter/mqtt.ts';
import { brokerProtocolVersion, freePort, startBroker, type TestBroker } from '../helpers/broker.ts';

const T0 = Date.parse('2026-06-21T12:00:00Z');

meterContract('simulated site', async () => {
  const clock = new VirtualClock(T0);
  const site = new SimSite({ clock, vehicle: { capacityWh: 60000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 0, pvW: 0 });
  const port = site.ports().siteMeter!;
  return {
    port,
    clock,
    caps: { currents: true, pv: true, counters: true },
    async set({ gridPowerW, pvPowerW }) {
      // the car idles: grid = house − PV
      const pv = pvPowerW ?? Math.max(0, -gridPowerW);
      site.setLoads({ houseLoadW: gridPowerW + pv, pvW: pv });
    },
    silence(on) {
      site.meterOffline = on;
    },
    async elapse(ms) {
      clock.advance(ms);
    },
    async dispose() {},
  };
});

meterContract('SunSpec over Modbus TCP (213 meter and 103 PV inverter behind one gateway)', async () => {
  const reading: SimMeterReading = { gridPowerW: 0, phaseCurrentsA: [0, 0, 0], importedWh: 100, exportedWh: 50 };
  let pvW = 0;
  const meterDev = createSimMeterDevice({ model: 213, unitId: 2, read: () => reading });
  const pvDev = createSimPvDevice({ unitId: 3, read: () => pvW });
  const tcpPort = await freePort();
  const gw = await startSimModbusGateway({ port: tcpPort, devices: [meterDev, pvDev] });
  const port = createSiteMeter(
    { driver: 'sunspec', modbus: { host: '127.0.0.1', port: tcpPort, unitId: 2 }, pv: { modbus: { host: '127.0.0.1', port: tcpPort, unitId: 3 } }, timeoutMs: 200, retries: 0 },
    { clock: systemClock, buses: new ModbusBuses(systemClock) },
  )!;
  return {
    port,
    clock: systemClock,
    caps: { currents: true, pv: true, counters: true },
    async set({ gridPowerW, pvPowerW }) {
      reading.gridPowerW = gridPowerW;
      reading.phaseCurrentsA = [1, 2, 3].map(() => Math.abs(gridPowerW) / 690);
      pvW = pvPowerW ?? 0;
    },
    silence(on) {
      meterDev.faults.silent = on;
      pvDev.faults.silent = on;
    },
    elapse: (ms) => new Promise((r) => setTimeout(r, ms)),
    dispose: () => gw.close(),
  };
});

let broker: TestBroker;
let pub: MqttClient;
before(async () => {
  broker = await startBroker();
  pub = await mqtt.connectAsync(broker.url, { protocolVersion: brokerProtocolVersion(), clientId: 'meter-contract-pub' });
});
after(async () => {
  await pub?.endAsync();
  await broker?.stop();
});

let n = 0;
meterContract('MQTT on a real broker', async () => {
  const clock = new VirtualClock(T0);
  const topic = `contract/${++n}/grid`;
  const pvTopic = `contract/${n}/pv`;
  const port = new MqttMeter({ url: broker.url, grid: { topic, path: 'power_W.total' }, pv: { topic: pvTopic }, maxAgeS: 10, clock });
  let silent = false;
  const publish = async (t: string, payload: string) => {
    const before = port.messages;
    await pub.publishAsync(t, payload);
    for (let i = 0; i < 200 && port.messages === before; i++) await new Promise((r) => setTimeout(r, 10));
  };
  return {
    port,
    clock,
    caps: { currents: false, pv: true, counters: false },
    async set({ gridPowerW, pvPowerW }) {
      if (silent) return;
      // a publisher that has not connected its meter yet would publish nothing: only after open
      if (!(port as unknown as { client?: unknown }).client) return;
      await publish(topic, JSON.stringify({ power_W: { total: gridPowerW } }));
      await publish(pvTopic, String(pvPowerW ?? 0));
    },
    silence(on) {
      silent = on;
    },
    async elapse(ms) {
      clock.advance(ms);
    },
    async dispose() {},
  };
});
