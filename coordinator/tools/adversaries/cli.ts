// `npm run adversaries`: the full adversary suite (≥ 1,000 work units, 30% malicious identities, every
// strategy), then the training suite (a train job, 30% adversaries of five kinds, against the same
// job all honest), printed as JSON. Exits non-zero when a promise is broken.
import { FULL_ADVERSARIES, FULL_HONEST, runAdversarySuite } from './suite.js';
import { runTrainAdversarySuite, trainSuiteBroken } from './train-suite.js';
import { TRAIN_ADVERSARIES, TRAIN_HONEST } from './train-workers.js';

// 11 adversary identities, 26 honest ones: adversaries are 30%.
const report = await runAdversarySuite({ workUnits: 1000, honest: FULL_HONEST, adversaries: FULL_ADVERSARIES });
// 6 of 20 identities: sign-flipped ×10, random, zero, stale-round and a colluding pair.
const train = await runTrainAdversarySuite({ honest: TRAIN_HONEST, adversaries: TRAIN_ADVERSARIES, rounds: 8, unitsPerRound: 10, localSteps: 20, hidden: 32 });
console.log(JSON.stringify({ ...report, train }, null, 2));
const broken = report.jobState !== 'done' || report.wrongAccepted > 0 || report.adversaryCredit !== 0 || !report.honestCreditIntact || !report.ledgerVerified || trainSuiteBroken(train);
process.exit(broken ? 1 : 0);
