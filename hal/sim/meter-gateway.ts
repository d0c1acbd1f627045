/**
 * The simulated site's Modbus devices behind one TCP port, as behind a Modbus TCP gateway in front of the
 * home's RS-485 bus: the inverter (unit 1, when served), the grid meter and, with simulated PV, a PV
 * inverter. `npm start` reads all of them through the real drivers, on one shared connection.
 */
import type { Clock } from '../ports.ts';
import type { SimSite } from './site.ts';
import { createSimSunspecDevice } from './sunspec-server.ts';
import { createSimMeterDevice, createSimPvDevice, startSimModbusGateway, type SimModbusGateway } from './meter-server.ts';

export interface SimSiteGatewayOptions {
  port: number;
  site: SimSite;
  clock: Clock;
  /** Serve the inverter too (unit 1). */
  inverter: boolean;
  meterUnitId: number;
  /** 201–204 or 211–214. */
  meterModel: number;
  /** Unit of the PV inverter; none = no PV device (also when the site has no PV). */
  pvUnitId?: number;
}

export async function startSimSiteGateway(o: SimSiteGatewayOptions): Promise<{ gateway: SimModbusGateway; describe: string[]; close(): Promise<void> }> {
  const { site } = o;
  const describe: string[] = [];
  const devices = [];
  let stopInverter = (): void => undefined;
  if (o.inverter) {
    const inv = createSimSunspecDevice({ inverter: site.inverter, car: site.car, clock: o.clock });
    if (inv.unitId === o.meterUnitId || inv.unitId === o.pvUnitId) throw new Error(`simulated gateway: unit ${inv.unitId} is the inverter's; give the meter (siteMeter.modbus.unitId) another`);
    devices.push(inv);
    stopInverter = () => inv.stop();
    describe.push(`inverter: simulated ${site.inverter.ratedW} W served as SunSpec unit ${inv.unitId} on 127.0.0.1:${o.port}`);
  }
  devices.push(createSimMeterDevice({
    model: o.meterModel,
    unitId: o.meterUnitId,
    read: () => ({ gridPowerW: site.gridPowerW(), phaseCurrentsA: site.phaseCurrentsA(), importedWh: site.meterTotals.importedWh, exportedWh: site.meterTotals.exportedWh }),
  }));
  describe.push(`site meter: simulated SunSpec ${o.meterModel} served as unit ${o.meterUnitId} on 127.0.0.1:${o.port}`);
  if (o.pvUnitId !== undefined && site.hasPv) {
    devices.push(createSimPvDevice({ unitId: o.pvUnitId, read: () => site.pvPowerW() }));
    describe.push(`PV: simulated SunSpec 103 inverter served as unit ${o.pvUnitId} on 127.0.0.1:${o.port}`);
  }
  let gateway: SimModbusGateway;
  try {
    gateway = await startSimModbusGateway({ port: o.port, devices });
  } catch (e) {
    stopInverter();
    throw e;
  }
  return {
    gateway,
    describe,
    close: async () => {
      stopInverter();
      await gateway.close();
    },
  };
}
