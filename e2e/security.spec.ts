// The security headers in a real browser: the volunteer page still starts WebGPU in its worker and
// may compile WebAssembly under the CSP, injected inline scripts stay blocked, and the worker WebSocket is open to
// same-origin and allow-listed pages only.
import { expect, test } from './fixtures';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { startTestCoordinator } from '../coordinator/testing/helpers';
import { expectComputedOn, ROOT, runMatmulJob } from './grid';

/** A page on another origin (another port) that tries to open the coordinator's worker WebSocket. */
function foreignSite(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
  return new Promise((done) => server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    done({ server, origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
  }));
}

/** From the page: does a WebSocket to `url` open (true) or fail (false)? */
function tryWebSocket(url: string): Promise<boolean> {
  return new Promise((done) => {
    const ws = new WebSocket(url);
    ws.onopen = () => {
      ws.close();
      done(true);
    };
    ws.onerror = () => done(false);
  });
}

test('the page computes under the CSP; wasm compiles, inline scripts do not; foreign origins cannot open the WebSocket', async ({ browser }) => {
  const site = await foreignSite();
  const other = await foreignSite();
  const grid = await startTestCoordinator({ staticDir: resolve(ROOT, 'dist'), security: { allowedOrigins: [other.origin] } });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
    });
    const icon = page.waitForResponse((r) => r.url().endsWith('/favicon.svg'));
    // WebGPU forced: the page must open it in its worker under the CSP (forcing is ignored where
    // WebGPU does not start, so the page then shows the CPU) and compute a unit on it.
    const res = await page.goto(grid.base + '/?backend=webgpu&tune=off');
    expect(res?.headers()['content-security-policy']).toContain("'wasm-unsafe-eval'");
    // public/ is copied as is: the page's icon and robots.txt are served.
    expect((await icon).status()).toBe(200);
    const robots = await page.request.get(grid.base + '/robots.txt');
    expect(await robots.text()).toContain('Disallow: /api/');
    await page.getByRole('button', { name: 'Start computing' }).click();
    await expect(page.getByTestId('volunteer-id')).toHaveText(/^v_[0-9a-f]{24}$/, { timeout: 60_000 });
    await expect(page.getByTestId('backend')).toHaveAttribute('data-backend', 'webgpu');
    const job = await runMatmulJob(grid, { m: 16, k: 8, n: 16, seed: 3, replication: 1, tile: { rows: 16, cols: 16 }, timeoutMs: 60_000 });
    expect(job.status.state).toBe('done');
    expect(job.relativeError).toBeLessThanOrEqual(1e-4);
    await expectComputedOn(page, 'webgpu', 1);
    // WebGPU ran a matmul in the worker under the CSP (measured between units, once the page waits for work).
    await expect(page.getByTestId('backend-speeds')).toHaveAttribute('data-webgpu', /^\d/, { timeout: 60_000 });

    const wasm = await page.evaluate(async () => {
      const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
      return (await WebAssembly.compile(empty)) instanceof WebAssembly.Module;
    });
    expect(wasm).toBe(true);
    // An injected inline script does not run (script-src has no 'unsafe-inline').
    const inlineRan = await page.evaluate(async () => {
      const el = document.createElement('script');
      el.textContent = 'window.__inlineRan = true';
      document.body.append(el);
      await new Promise((r) => setTimeout(r, 100));
      return (window as unknown as { __inlineRan?: boolean }).__inlineRan === true;
    });
    expect(inlineRan).toBe(false);
    expect(violations.some((v) => /script-src/.test(v))).toBe(true);
    violations.length = 0; // that one was on purpose

    const wsUrl = grid.base.replace(/^http/, 'ws') + '/ws';
    expect(await page.evaluate(tryWebSocket, wsUrl)).toBe(true);
    const foreign = await context.newPage();
    await foreign.goto(site.origin + '/');
    expect(await foreign.evaluate(tryWebSocket, wsUrl)).toBe(false);
    const listed = await context.newPage();
    await listed.goto(other.origin + '/');
    expect(await listed.evaluate(tryWebSocket, wsUrl)).toBe(true);
    expect(violations).toEqual([]);
  } finally {
    await context.close();
    site.server.close();
    other.server.close();
    await grid.stop();
  }
});
