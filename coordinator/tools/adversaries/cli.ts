// `npm run adversaries`: the full adversary suite (≥ 1,000 work units, 30% malicious identities, every
// strategy), printed as JSON. Exits non-zero when a promise is broken.
import { FULL_ADVERSARIES, FULL_HONEST, runAdversarySuite } from './suite.js';

// 11 adversary identities, 26 honest ones: adversaries are 30%.
const report = await runAdversarySuite({ workUnits: 1000, honest: FULL_HONEST, adversaries: FULL_ADVERSARIES });
console.log(JSON.stringify(report, null, 2));
const broken = report.jobState !== 'done' || report.wrongAccepted > 0 || report.adversaryCredit !== 0 || !report.honestCreditIntact || !report.ledgerVerified;
process.exit(broken ? 1 : 0);
