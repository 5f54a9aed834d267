// A volunteer process of `npm run bench:train -- --processes`: connects one timed sim worker
// (bench/train-volunteer.ts) to the coordinator at argv[2] playing argv[3] ('honest' or an adversary
// kind), says 'ready' with its volunteer id, and on 'stop' reports and exits.
import { connectVolunteer, type Role } from './train-volunteer.js';

const [url, role] = process.argv.slice(2) as [string, Role];
const { worker, report } = await connectVolunteer(url, role);
process.send!({ type: 'ready', volunteerId: worker.volunteerId });
process.on('message', (m) => {
  if (m !== 'stop') return;
  process.send!({ type: 'stopped', ...report() }, () => {
    worker.close();
    process.exit(0);
  });
});
// The bench ended without stopping it (it failed): no orphan.
process.on('disconnect', () => process.exit(0));
