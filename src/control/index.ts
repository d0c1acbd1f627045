export { decide, initialMemory } from './decide.ts';
export * from './types.ts';
export { departure, floors, powerLimits, floorBoundW, capacityWh, efficiency } from './limits.ts';
export { nextLocalTimeMs } from './time.ts';
