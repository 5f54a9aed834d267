// `npm run fuzz [-- --count N --seed S]`: the full fuzz run (10,000 messages by default, then a pass
// against a coordinator with its real limits), as JSON. Exits non-zero when a message was not
// refused, the coordinator went down, or its state changed.
import { parseArgs } from 'node:util';
import { fuzzCoordinator, fuzzOk } from './run.js';

const USAGE = `usage: npm run fuzz [-- --count N] [--seed S] [--real-limits-count N]

Sends N malformed and mutated messages (default 10,000) over the worker WebSocket and the HTTP API
to a coordinator holding real state (with its rate limits raised, so every message reaches a parser),
then --real-limits-count more (default 2,000) to one with its real limits (rate limits, failed-login
lockout, connection caps), and checks that each was refused and that nothing changed. Prints JSON;
exits non-zero on any failure.`;

let values;
try {
  ({ values } = parseArgs({
    options: { count: { type: 'string' }, seed: { type: 'string' }, 'real-limits-count': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
} catch (err) {
  console.error(`${(err as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const count = (name: string, raw: string | undefined, fallback: number) => {
  const n = Number(raw ?? fallback);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a whole number, got ${raw}\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const seed = count('seed', values.seed, 42);
const raised = await fuzzCoordinator({ count: count('count', values.count, 10_000), seed });
const real = await fuzzCoordinator({ count: count('real-limits-count', values['real-limits-count'], 2_000), seed: seed + 1, realLimits: true });
console.log(JSON.stringify({ raisedLimits: raised, realLimits: real }, null, 2));
process.exit(fuzzOk(raised) && fuzzOk(real) ? 0 : 1);
