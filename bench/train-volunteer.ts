// One volunteer of `npm run bench:train`: a train sim worker, honest or one of the training
// adversaries (coordinator/tools/adversaries/train-workers.ts), that counts the CPU time it spends
// computing (CPU, not wall time: volunteers in processes of their own share the machine's cores, and
// a unit preempted half the time used the CPU for half of it). Run here in the bench's process, or in its own process (bench/train-worker.ts) so
// that its utilisation is its own and not a share of one event loop.
import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { honestCompute, SimWorker, type Compute } from '../coordinator/testing/sim-worker.js';
import { trainAdversaryOptions, type TrainStrategy } from '../coordinator/tools/adversaries/train-workers.js';

export type Role = 'honest' | TrainStrategy;

/** What a volunteer reports when it stops. */
export interface VolunteerReport {
  volunteerId: string;
  /** CPU milliseconds spent computing units. */
  computeMs: number;
  closed: { code: number; reason: string } | null;
}

export interface Volunteer {
  role: Role;
  volunteerId: string;
  stop(): Promise<VolunteerReport>;
}

/** A sim worker playing `role` whose compute is timed; connected when this resolves. */
export async function connectVolunteer(url: string, role: Role) {
  let computeMs = 0;
  const opts = role === 'honest' ? { compute: honestCompute } : trainAdversaryOptions(role);
  const inner = opts.compute ?? honestCompute;
  const compute: Compute = async (wu, inputs) => {
    const t0 = process.cpuUsage();
    try {
      return await inner(wu, inputs);
    } finally {
      const { user, system } = process.cpuUsage(t0);
      computeMs += (user + system) / 1000;
    }
  };
  const worker = new SimWorker({ url, kinds: ['train'], keepMessages: false, ...opts, compute });
  await worker.connect();
  return {
    worker,
    report: (): VolunteerReport => ({ volunteerId: worker.volunteerId, computeMs, closed: worker.closed }),
  };
}

/** A volunteer in this process. */
export async function inProcessVolunteer(url: string, role: Role): Promise<Volunteer> {
  const { worker, report } = await connectVolunteer(url, role);
  return {
    role,
    volunteerId: worker.volunteerId,
    stop: async () => {
      const r = report();
      worker.close();
      return r;
    },
  };
}

/** A volunteer in a child process of its own (bench/train-worker.ts, through tsx). */
export function childVolunteer(url: string, role: Role): Promise<Volunteer> {
  const child: ChildProcess = fork(resolve(import.meta.dirname, 'train-worker.ts'), [url, role], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>(type: string) =>
    new Promise<T>((ok, fail) => {
      const onMessage = (m: { type: string } & T) => {
        if (m.type !== type) return;
        child.off('exit', onExit);
        child.off('message', onMessage);
        ok(m);
      };
      const onExit = (code: number | null) => fail(new Error(`volunteer process (${role}) exited with ${code} before '${type}'`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  return next<{ volunteerId: string }>('ready').then(({ volunteerId }) => ({
    role,
    volunteerId,
    stop: async () => {
      const stopped = next<VolunteerReport>('stopped');
      child.send('stop');
      return stopped;
    },
  }));
}
