// The e2e tests' `test`: Playwright's, plus a report printed when a test fails — what the
// coordinators logged (with times) and what each open page showed. A CI failure is often a timeout
// with no other clue; this says which step the test was on and what the grid was doing.
// TABGRID_E2E_TRACE=1 prints it for passing tests too.
import { test as base, type Browser, type Page, type TestInfo } from '@playwright/test';

export { expect } from '@playwright/test';

interface Trace {
  readonly t0: number;
  lines: string[];
  /** What the test awaits now, with when it began (a request the coordinator never answers). */
  pending: Set<{ since: number; what: string }>;
}

let current: Trace | null = null;

/** Records a timestamped line for the current test's failure report (nothing when no test runs). */
export function traceNote(source: string, msg: string) {
  if (!current) return;
  current.lines.push(`+${((Date.now() - current.t0) / 1000).toFixed(1)}s ${source}: ${msg.slice(0, 300)}`);
  if (current.lines.length > 400) current.lines.splice(0, 100);
}

/** Marks something the test waits for; call the result when it is over. */
export function tracePending(source: string, what: string): () => void {
  const trace = current;
  if (!trace) return () => undefined;
  const entry = { since: Date.now(), what: `${source}: ${what.slice(0, 200)}` };
  trace.pending.add(entry);
  return () => {
    trace.pending.delete(entry);
    if (Date.now() - entry.since > 2_000) traceNote(source, `${what.slice(0, 200)} took ${((Date.now() - entry.since) / 1000).toFixed(1)} s`);
  };
}

/** Resolves to `fallback` if `p` takes longer than `ms` (a page whose main thread is stuck). */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return Promise.race([p.catch(() => fallback), new Promise<T>((r) => setTimeout(() => r(fallback), ms))]);
}

async function describePage(page: Page): Promise<string[]> {
  const out = [`page ${page.url()}`];
  for (const frame of page.frames()) {
    // Locators pierce open shadow roots, so the widget's fields are listed too.
    const fields = await within(
      frame.locator('[data-testid]').evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.testid}=${(e.textContent ?? '').trim().slice(0, 80)}`)),
      2_000,
      ['(no answer)'],
    );
    out.push(`  frame ${frame.url()}: ${fields.join(' | ')}`);
  }
  const messages = await within(page.consoleMessages(), 2_000, []);
  for (const m of messages.slice(-15)) out.push(`  console.${m.type()}: ${m.text().slice(0, 300)}`);
  for (const e of (await within(page.pageErrors(), 2_000, [])).slice(-5)) out.push(`  page error: ${e.message.slice(0, 300)}`);
  return out;
}

async function describeBrowser(browser: Browser): Promise<string[]> {
  const out: string[] = [];
  for (const context of browser.contexts()) for (const page of context.pages()) out.push(...(await describePage(page)));
  return out;
}

export const test = base.extend<{ failureReport: void }>({
  failureReport: [
    async ({ browser }, use, testInfo) => {
      current = { t0: Date.now(), lines: [], pending: new Set() };
      const trace = current;
      const before = new Set(browser.contexts());
      await use();
      current = null;
      if (testInfo.status !== testInfo.expectedStatus || process.env.TABGRID_E2E_TRACE) await report(browser, trace, testInfo);
      // Pages a test opened and left open would go on reconnecting through later tests (and could
      // find a later coordinator on a reused port): they end with the test that opened them.
      for (const context of browser.contexts()) if (!before.has(context)) await within(context.close(), 10_000, undefined);
    },
    { auto: true },
  ],
});

async function report(browser: Browser, trace: Trace, testInfo: TestInfo) {
  const pages = await within(describeBrowser(browser), 10_000, ['(the browser did not answer)']);
  console.log(
    [
      `--- report: ${testInfo.title} (${testInfo.status} after ${(testInfo.duration / 1000).toFixed(1)} s)`,
      ...trace.lines.slice(-150),
      ...[...trace.pending].map((p) => `still waiting since +${((p.since - trace.t0) / 1000).toFixed(1)}s: ${p.what}`),
      ...pages,
      '---',
    ].join('\n'),
  );
}
