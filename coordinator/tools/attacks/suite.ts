// The attack suite: starts a coordinator as `npm start` does (its own process, its real limits, a
// fresh data directory), runs each attack against it (attacks.ts) from a loopback address of its
// own, and reports per attack whether the coordinator held, with its figure.
import { ATTACKS, type AttackResult } from './attacks.js';
import { startCoordinatorProcess } from './coordinator-process.js';

export interface SuiteOptions {
  /** The reduced run for `npm test`: shorter floods, no kill -9, no exhaustive loops. */
  reduced?: boolean;
  /** Only these attacks (names from ATTACKS). */
  only?: string[];
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export type SuiteReport = Record<string, AttackResult>;

export function attackNames(): string[] {
  return ATTACKS.map((a) => a.name);
}

export async function runAttackSuite(opts: SuiteOptions = {}): Promise<SuiteReport> {
  const unknown = (opts.only ?? []).filter((n) => !ATTACKS.some((a) => a.name === n));
  if (unknown.length) throw new Error(`no such attack: ${unknown.join(', ')} (the attacks: ${attackNames().join(', ')})`);
  const chosen = ATTACKS.filter((a) => (opts.only ? opts.only.includes(a.name) : !(opts.reduced && a.full)));
  const c = await startCoordinatorProcess();
  const report: SuiteReport = {};
  try {
    for (const [i, attack] of chosen.entries()) {
      // 127.0.0.10, .15, .20, …: each attack its own addresses (one attack uses four in a row).
      const from = `127.0.${Math.floor((10 + 5 * i) / 250)}.${(10 + 5 * i) % 250}`;
      const t0 = performance.now();
      try {
        report[attack.name] = await attack.run({ c, from, reduced: opts.reduced === true });
      } catch (err) {
        report[attack.name] = { held: false, figure: { error: (err as Error).stack ?? String(err) } };
      }
      opts.log?.(`${report[attack.name].held ? 'held  ' : 'BROKEN'} ${attack.name} (${((performance.now() - t0) / 1000).toFixed(1)} s) ${JSON.stringify(report[attack.name].figure)}`);
    }
  } finally {
    await c.stop();
  }
  return report;
}
