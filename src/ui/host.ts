/**
 * The web page as the daemon sees it (docs/web.md): off while `ui.listen` is null, and then not even
 * loaded (the server's modules cost memory on a board that does not serve the page); started, moved to a
 * new address or stopped as the config changes (a reload applies `ui.*` at once).
 */
import type { Config } from '../config/types.ts';
import type { UiDeps, UiServer } from './server.ts';

export class UiHost {
  private server?: UiServer;
  private listening: string | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  /** Where the page is served now (after `apply`). */
  address?: { host: string; port: number };

  constructor(private readonly deps: UiDeps) {}

  /** Bring the page in line with `config.ui`; a failure is logged, never thrown (the loop goes on). */
  apply(config: Config): Promise<void> {
    const next = this.chain.then(() => this.applyNow(config));
    this.chain = next.catch(() => {});
    return next;
  }

  private async applyNow(config: Config): Promise<void> {
    const ui = config.ui ?? { listen: null, publicRead: false, maxStreams: 8, allowedHosts: [] };
    if (ui.listen === this.listening) {
      this.server?.reconfigure(ui);
      return;
    }
    if (this.server) await this.server.close();
    this.server = undefined;
    this.address = undefined;
    this.listening = null;
    if (!ui.listen) return;
    const { UiServer } = await import('./server.ts');
    const s = new UiServer(this.deps, ui);
    try {
      this.address = await s.listen(ui.listen);
      this.server = s;
      this.listening = ui.listen;
      this.deps.log('info', `web page on http://${ui.listen}/`);
    } catch (e) {
      await s.close().catch(() => {});
      const msg = (e as Error)?.message ?? String(e);
      this.deps.log('warn', `web page not available on ${ui.listen}: ${msg}${/EADDRINUSE/.test(msg) ? ' (another program uses that port: choose another ui.listen)' : ''}`);
    }
  }

  async close(): Promise<void> {
    await this.chain;
    await this.server?.close();
    this.server = undefined;
    this.listening = null;
  }
}
