#!/usr/bin/python3
"""
A SunSpec inverter that is not this project's simulator: pymodbus (Debian python3-pymodbus 3.0.0) serving
models 1, 701, 702 and 704 over Modbus TCP on 127.0.0.1, for the dispatch -> setpoint bench
(bench/dispatch-latency.ts). It prints `READY <port>` once listening and, for every write that covers
704 WSet, `WSET <epoch ns> <WSet raw>` the moment pymodbus hands the write to the register block: the
outside view of when a setpoint reached the device. 701 W follows WSet (WSet_SF = W_SF = 0).

The model layouts come from the SunSpec model definitions (hal/inverter/sunspec/models/*.json, the
standard's JSON); the layout and the register image are built here, independently of the project's code.

Usage: /usr/bin/python3 bench/pymodbus-inverter.py --port N
"""
import argparse
import asyncio
import json
import os
import sys
import time
import types

# Only Modbus TCP is served: pymodbus imports pyserial at module level for its serial server, which this
# bench does not use (and Debian's python3-pymodbus does not pull in). Stand-ins keep the import working.
for name in ("serial", "serial_asyncio"):
    if name not in sys.modules:
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.create_serial_connection = None
            stub.serialutil = types.SimpleNamespace(SerialException=Exception)
            sys.modules[name] = stub

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext  # noqa: E402
from pymodbus.server import StartAsyncTcpServer  # noqa: E402

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hal", "inverter", "sunspec", "models")
BASE = 40000
SIZES = {"int16": 1, "uint16": 1, "enum16": 1, "bitfield16": 1, "sunssf": 1, "count": 1, "acc16": 1, "pad": 1,
         "int32": 2, "uint32": 2, "enum32": 2, "bitfield32": 2, "acc32": 2, "float32": 2, "ipaddr": 2,
         "int64": 4, "uint64": 4, "acc64": 4, "ipv6addr": 8, "eui48": 4}
# SunSpec "not implemented" values, high word first
SENTINEL = {"int16": [0x8000], "sunssf": [0x8000], "pad": [0x8000], "uint16": [0xFFFF], "enum16": [0xFFFF],
            "bitfield16": [0xFFFF], "count": [0], "acc16": [0], "int32": [0x8000, 0], "uint32": [0xFFFF, 0xFFFF],
            "enum32": [0xFFFF, 0xFFFF], "bitfield32": [0xFFFF, 0xFFFF], "acc32": [0, 0], "float32": [0x7FC0, 0],
            "int64": [0x8000, 0, 0, 0], "uint64": [0xFFFF] * 4, "acc64": [0] * 4}


def layout(model_id):
    """Offsets of every point from the model's ID register: a group's points, then its sub-groups."""
    with open(os.path.join(MODELS_DIR, f"model_{model_id}.json")) as f:
        m = json.load(f)
    points = {}
    offset = 0

    def walk(g, prefix):
        nonlocal offset
        for p in g.get("points", []):
            size = p.get("size") or SIZES[p["type"]]
            points[prefix + p["name"]] = (offset, p["type"], size)
            offset += size
        for sub in g.get("groups", []):
            walk(sub, prefix + sub["name"] + ".")

    walk(m["group"], "")
    return points, offset - 2


class Device:
    def __init__(self):
        self.regs = [0] * 65536
        self.at = {}
        self.regs[BASE:BASE + 2] = [0x5375, 0x6E53]  # "SunS"
        addr = BASE + 2
        for mid in (1, 701, 702, 704):
            pts, length = layout(mid)
            for name, (off, typ, size) in pts.items():
                self.regs[addr + off:addr + off + size] = (SENTINEL.get(typ, [0]) * size)[:size] if typ != "string" else [0] * size
            self.regs[addr] = mid
            self.regs[addr + 1] = length
            self.at[mid] = (addr, pts)
            addr += 2 + length
        self.regs[addr:addr + 2] = [0xFFFF, 0]
        self.chain_end = addr + 2
        self.put(1, "Mn", "Bench Inverter")
        self.put(1, "Md", "PYMODBUS-SUNSPEC")
        self.put(1, "Vr", "1.0")
        self.put(1, "SN", "PM0001")
        for name, v in {"ACType": 0, "St": 1, "InvSt": 3, "ConnSt": 1, "Alrm": 0, "DERMode": 1, "W": 0, "W_SF": 0,
                        "LNV": 2300, "V_SF": -1, "Hz": 50000, "Hz_SF": -3}.items():
            self.put(701, name, v)
        for name, v in {"WMaxRtg": 11000, "WChaRteMaxRtg": 11000, "WDisChaRteMaxRtg": 11000, "W_SF": 0,
                        "IntIslandCatRtg": 1, "IntIslandCat": 1, "WMax": 11000, "VNomRtg": 230, "V_SF": 0}.items():
            self.put(702, name, v)
        for name, v in {"WSetEna": 0, "WSetMod": 1, "WSet": 0, "WSetRvrt": 0, "WSetEnaRvrt": 0, "WSetRvrtTms": 0,
                        "WSetRvrtRem": 0, "WSet_SF": 0}.items():
            self.put(704, name, v)

    def addr(self, mid, name):
        base, pts = self.at[mid]
        return base + pts[name][0]

    def put(self, mid, name, v):
        base, pts = self.at[mid]
        off, typ, size = pts[name]
        a = base + off
        if typ == "string":
            b = v.encode()[:2 * size].ljust(2 * size, b"\0")
            self.regs[a:a + size] = [b[2 * i] << 8 | b[2 * i + 1] for i in range(size)]
        else:
            v = int(v) & ((1 << (16 * size)) - 1)
            self.regs[a:a + size] = [(v >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]

    def int32(self, a):
        v = self.regs[a] << 16 | self.regs[a + 1]
        return v - (1 << 32) if v & 0x80000000 else v


class Block(ModbusSequentialDataBlock):
    def __init__(self, dev):
        super().__init__(0, dev.regs)
        self.dev = dev
        self.wset = dev.addr(704, "WSet")

    def validate(self, address, count=1):
        return BASE <= address and address + count <= self.dev.chain_end

    def setValues(self, address, values):  # noqa: N802 (pymodbus API)
        now = time.time_ns()
        super().setValues(address, values)
        self.dev.regs = self.values
        if address <= self.wset < address + len(values):
            raw = self.dev.int32(self.wset)
            enabled = self.values[self.dev.addr(704, "WSetEna")] == 1
            self.dev.put(701, "W", raw if enabled else 0)
            self.values = self.dev.regs
            sys.stdout.write(f"WSET {now} {raw}\n")
            sys.stdout.flush()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    dev = Device()
    block = Block(dev)
    dev.regs = block.values
    store = ModbusSlaveContext(hr=block, zero_mode=True)
    context = ModbusServerContext(slaves=store, single=True)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: (sys.stdout.write(f"READY {args.port}\n"), sys.stdout.flush()))
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", args.port))


if __name__ == "__main__":
    asyncio.run(main())
