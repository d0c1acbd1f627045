/**
 * The embedded MQTT broker used by `npm start` (simulation only, `uplink.url: "embedded"`) so a new user
 * can `mosquitto_pub` a dispatch without installing anything. It speaks MQTT 3.1.1; the uplink falls back
 * to 3.1.1 when a broker refuses MQTT 5. Never used for a real install.
 */
import { createServer, type Server } from 'node:net';
import aedesPkg from 'aedes';

export interface EmbeddedBroker {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(port: number, host = '127.0.0.1'): Promise<EmbeddedBroker> {
  const factory = (aedesPkg as unknown as { createBroker?: () => unknown }).createBroker ?? (aedesPkg as unknown as () => unknown);
  const broker = factory() as { handle: (socket: unknown) => void; close(cb: () => void): void; on(ev: string, fn: (...a: unknown[]) => void): void };
  // a client that misbehaves must not take the broker (and with it the runtime) down
  broker.on('clientError', () => {});
  broker.on('connectionError', () => {});
  const server = createServer((socket) => {
    // small request/response packets: Nagle would delay each dispatch answer by tens of milliseconds
    socket.setNoDelay(true);
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as { port: number }).port;
  return {
    server,
    port: actualPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => broker.close(() => resolve()));
        // close() waits for open connections; the broker's close drops them
        broker.close(() => {});
      }),
  };
}
