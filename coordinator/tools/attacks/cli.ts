// `npm run attacks [-- --only a,b] [--reduced]`: the black-box attack suite. Prints JSON
// {attack: {held, figure}} and exits non-zero if any attack was not held.
import { parseArgs } from 'node:util';
import { attackNames, runAttackSuite } from './suite.js';

const USAGE = `usage: npm run attacks [-- --only NAME,NAME] [--reduced]

Starts a coordinator as npm start does (its own process, real limits, a fresh data directory) and
attacks it from loopback: tokenless storage through rooms and demo jobs, token guessing, a weak API
token, a flood of shard-holding claims, foreign and rebinding Origins, other callers' jobs, the room
list and board, big frames before hello, 403 codes, /peerjs, lying .npy headers, and the attacks
that already held. Prints JSON {attack: {held, figure}}; exits 1 if any attack was not held.

attacks: ${attackNames().join(', ')}`;

let values;
try {
  ({ values } = parseArgs({ options: { only: { type: 'string' }, reduced: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
} catch (err) {
  console.error(`${(err as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
try {
  const report = await runAttackSuite({
    reduced: values.reduced,
    only: values.only?.split(',').map((s) => s.trim()).filter(Boolean),
    log: (line) => console.error(line),
  });
  console.log(JSON.stringify(report, null, 2));
  process.exit(Object.values(report).every((r) => r.held) ? 0 : 1);
} catch (err) {
  console.error(`attacks: ${(err as Error).message}`);
  process.exit(2);
}
