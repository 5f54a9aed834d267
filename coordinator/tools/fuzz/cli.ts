// `npm run fuzz [-- --count N --seed S]`: the full fuzz run (10,000 messages by default), as JSON.
import { parseArgs } from 'node:util';
import { fuzzCoordinator } from './run.js';

const { values } = parseArgs({ options: { count: { type: 'string' }, seed: { type: 'string' } } });
const report = await fuzzCoordinator({ count: Number(values.count ?? 10_000), seed: Number(values.seed ?? 42) });
console.log(JSON.stringify(report, null, 2));
const ok = report.coordinatorUp && report.oversizedFrameClose === 1009 && report.notRejected === 0 && report.unanswered === 0 && report.stateUnchanged && report.ledgerVerified && report.integrityCheck === 'ok';
process.exit(ok ? 0 : 1);
