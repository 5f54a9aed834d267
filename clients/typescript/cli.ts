// The researcher's command line over the TypeScript client: submit jobs from .npy and .onnx files,
// follow them, fetch results, cancel, list. `tabgrid <command>` (bin/tabgrid.js) runs it for every
// command but the coordinator's own (start, ledger, tokens: coordinator/cli.ts).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  ApiError,
  Forbidden,
  Grid,
  GridConnectionError,
  InputError,
  JobFailed,
  NotReady,
  RateLimited,
  ServerError,
  Unauthorized,
  VERSION,
  WaitTimeout,
  parseNpy,
  type GridStats,
  type Job,
  type JobStatus,
  type RoundStats,
  type Tolerance,
  type TrainSettings,
} from './index.js';

/** Exit statuses scripts can rely on (README "Command line"). */
export const EXIT = {
  ok: 0,
  /** The job failed or was cancelled (wait, result, submit -o). */
  jobFailed: 1,
  /** Unknown command or option, missing argument, unreadable or invalid input file. */
  usage: 2,
  /** The coordinator refused the request: 400, 404, 409 conflict, 413, 415. */
  refused: 3,
  /** No API token, or a wrong one or one without the scope (401, 403). */
  auth: 4,
  /** `result` before the job is done (409 not_ready). */
  notReady: 5,
  /** `--timeout` ran out while waiting. */
  timeout: 6,
  /** The coordinator cannot be reached or is failing: no connection, 5xx, 429 after the client's retries. */
  unavailable: 7,
  /** The command line itself failed (a bug: please report it). */
  internal: 70,
} as const;

export interface CliIo {
  stdout: { write(text: string | Uint8Array): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
}

const USAGE = `usage: tabgrid <command> [options]

Researchers (need the coordinator's URL and an API token):
  tabgrid submit matmul A.npy B.npy [-o C.npy] [--replication N] [--tile RxC] [--no-adaptive]
  tabgrid submit attention Q.npy K.npy V.npy [--causal] [--block-rows N] [-o OUT.npy]
  tabgrid submit onnx MODEL.onnx NAME=X.npy… [--items-per-unit N] [--argmax OUTPUT]… [-o PATH]
  tabgrid submit train X.npy Y.npy --layers 8,32,4 --rounds N --local-steps N --batch-size N
      [--optimizer adamw|sgd] [--lr F] [--units-per-round N] [--compress int8] [--seed N]
      [--init PARAMS.npy]               an MLP classifier: X rows × features, Y class ids
  tabgrid submit train --tokens TOKENS.npy [--validation VALID.npy] --vocab V --context T
      --layers L --d-model D --heads H --rounds N --local-steps N --batch-size N [as above]
                                        a transformer language model on 1-D token ids in [0, V);
                                        waiting on a train job prints each round's loss
      every submit: [--name TEXT] [--replication N] [--atol A --rtol R] [--wait] [--timeout S];
      it prints the job id; -o waits for the result and writes it (an onnx job with several
      outputs: PATH is a folder of <output>.npy); --wait waits without writing
  tabgrid status [JOB]                  a job's state and progress; without JOB, the grid's
  tabgrid wait JOB [--timeout S]        until the job is done (a progress bar on a terminal)
  tabgrid result JOB -o PATH [--output NAME] [--wait] [--timeout S]
                                        write the result .npy (- for stdout); a train job's
                                        model with --model -o MODEL.onnx
  tabgrid cancel JOB
  tabgrid jobs                          every job, newest first

  --url URL      the coordinator (default TABGRID_URL, else http://localhost:8080)
  --token TOKEN  an API token (default TABGRID_TOKEN; \`npm start\` prints one)
  --json         machine-readable output on stdout (errors as JSON on stderr)
  TABGRID_RETRIES=N  retries on 429 and failed connections (default 5)

The coordinator (on its own machine, in a checkout):
  tabgrid start [--port N] [--host H] [--data DIR]   run it (what \`npm start\` runs)
  tabgrid ledger verify|export|verify-receipt …      audit the credit ledger
  tabgrid tokens create|list|revoke …                manage API tokens

Exit status: 0 ok · 1 job failed or cancelled · 2 usage or bad input file · 3 refused by the
coordinator (400/404/409/413) · 4 no or wrong token (401/403) · 5 result not ready · 6 timed out ·
7 coordinator unreachable or failing (5xx, 429 after retries) · 70 internal error`;

/** Each command's options beyond --url, --token, --json and --help. */
const SUBMIT = ['out', 'replication', 'name', 'atol', 'rtol', 'wait', 'timeout'];
const TRAIN_MLP = ['layers', 'rounds', 'local-steps', 'batch-size', 'optimizer', 'lr', 'units-per-round', 'compress', 'seed', 'init'];
/** `submit train`'s options that only a transformer language model (`--tokens`) takes. */
const TRAIN_LM_ONLY = ['tokens', 'validation', 'vocab', 'context', 'd-model', 'heads'];
const ALLOWED: Record<string, string[]> = {
  'submit matmul': [...SUBMIT, 'tile', 'no-adaptive'],
  'submit attention': [...SUBMIT, 'causal', 'block-rows'],
  'submit onnx': [...SUBMIT, 'items-per-unit', 'argmax', 'flops-per-item'],
  'submit train': [...SUBMIT, ...TRAIN_MLP, ...TRAIN_LM_ONLY],
  status: [],
  wait: ['timeout'],
  result: ['out', 'output', 'model', 'wait', 'timeout'],
  cancel: [],
  jobs: [],
};

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  out: { type: 'string', short: 'o' },
  replication: { type: 'string' },
  name: { type: 'string' },
  tile: { type: 'string' },
  'no-adaptive': { type: 'boolean' },
  causal: { type: 'boolean' },
  'block-rows': { type: 'string' },
  'items-per-unit': { type: 'string' },
  argmax: { type: 'string', multiple: true },
  'flops-per-item': { type: 'string' },
  atol: { type: 'string' },
  rtol: { type: 'string' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  output: { type: 'string' },
  model: { type: 'boolean' },
  layers: { type: 'string' },
  rounds: { type: 'string' },
  'local-steps': { type: 'string' },
  'batch-size': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  'units-per-round': { type: 'string' },
  compress: { type: 'string' },
  seed: { type: 'string' },
  init: { type: 'string' },
  tokens: { type: 'string' },
  validation: { type: 'string' },
  vocab: { type: 'string' },
  context: { type: 'string' },
  'd-model': { type: 'string' },
  heads: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends Error {}

/** Runs one command line (without the leading `tabgrid`); resolves to its exit status. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  let json = argv.includes('--json');
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    json = values.json ?? false;
    if (values.version) {
      print(io, json ? JSON.stringify({ version: VERSION }) : VERSION);
      return EXIT.ok;
    }
    const [command, ...args] = positionals;
    if (!command || command === 'help' || values.help) {
      io.stdout.write(USAGE + '\n');
      return command || values.help ? EXIT.ok : EXIT.usage;
    }
    const key = command === 'submit' ? `submit ${args[0] ?? ''}` : command;
    if (!Object.hasOwn(ALLOWED, key)) {
      throw new UsageError(command === 'submit' ? `submit what? matmul, attention, onnx or train (got ${args[0] ?? 'nothing'})` : `unknown command ${command}`);
    }
    const given = Object.keys(values).filter((o) => !['url', 'token', 'json', 'help'].includes(o));
    const stray = given.filter((o) => !ALLOWED[key].includes(o));
    if (stray.length) throw new UsageError(`--${stray[0]} is not an option of \`tabgrid ${key}\``);

    const token = values.token ?? io.env.TABGRID_TOKEN;
    if (!token) {
      return fail(io, json, EXIT.auth, 'unauthorized', 'no API token: pass --token or set TABGRID_TOKEN (`npm start` prints one; `npm run tokens -- create --scope submit` makes more)');
    }
    const retries = io.env.TABGRID_RETRIES;
    if (retries !== undefined && !/^\d+$/.test(retries)) throw new UsageError(`TABGRID_RETRIES must be a whole number, got ${retries}`);
    const grid = new Grid(values.url ?? io.env.TABGRID_URL ?? 'http://localhost:8080', token, retries === undefined ? {} : { retries: Number(retries) });
    const cli = new Commands(grid, values, io, json);
    if (command === 'submit') return await cli.submit(args[0], args.slice(1));
    if (command === 'status') return await cli.status(args);
    if (command === 'jobs') return await cli.jobs(args);
    return await cli.onJob(command as 'wait' | 'result' | 'cancel', args);
  } catch (err) {
    return report(io, json, err);
  }
}

function print(io: CliIo, line: string) {
  io.stdout.write(line + '\n');
}

function fail(io: CliIo, json: boolean, exit: number, code: string, message: string, status?: number): number {
  io.stderr.write(json ? JSON.stringify({ error: { code, message, ...(status !== undefined && { status }), exit } }) + '\n' : `tabgrid: ${message}\n`);
  return exit;
}

/** An error as its exit status and message. */
function report(io: CliIo, json: boolean, err: unknown): number {
  if (err instanceof UsageError) return fail(io, json, EXIT.usage, 'usage', `${err.message}\n(tabgrid --help lists the commands)`);
  if (err instanceof InputError) return fail(io, json, EXIT.usage, 'bad_input', err.message);
  if (err instanceof WaitTimeout) return fail(io, json, EXIT.timeout, 'timeout', err.message);
  if (err instanceof GridConnectionError) return fail(io, json, EXIT.unavailable, 'unreachable', err.message);
  if (err instanceof ApiError) {
    const exit =
      err instanceof JobFailed
        ? EXIT.jobFailed
        : err instanceof NotReady
          ? EXIT.notReady
          : err instanceof Unauthorized || err instanceof Forbidden
            ? EXIT.auth
            : err instanceof RateLimited || err instanceof ServerError
              ? EXIT.unavailable
              : EXIT.refused;
    return fail(io, json, exit, err.code, err.message, err.status);
  }
  return fail(io, json, EXIT.internal, 'internal', `internal error: ${(err as Error)?.stack ?? String(err)}`);
}

function readInput(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (err as Error).message}`);
  }
}

type CountOption = 'replication' | 'block-rows' | 'items-per-unit' | 'rounds' | 'local-steps' | 'batch-size' | 'units-per-round' | 'seed' | 'layers' | 'vocab' | 'context' | 'd-model' | 'heads';

function count(values: Values, name: CountOption): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got ${raw}`);
  return Number(raw);
}

function number(values: Values, name: 'atol' | 'rtol' | 'flops-per-item' | 'timeout' | 'lr'): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, got ${raw}`);
  return n;
}

function tolerance(values: Values): Tolerance | undefined {
  const atol = number(values, 'atol');
  const rtol = number(values, 'rtol');
  if (atol === undefined && rtol === undefined) return undefined;
  if (atol === undefined || rtol === undefined) throw new UsageError('give --atol and --rtol together');
  return { atol, rtol };
}

const shapeText = (shape: number[]) => shape.join('×');

/** A progress bar on a terminal: `j_… [█████░░░░░] 12/40 units  running`, redrawn in place. */
function progressBar(io: CliIo, id: string, enabled: boolean) {
  let drawn = false;
  return {
    update(status: JobStatus) {
      if (!enabled) return;
      const { done, total } = status.progress;
      const width = Math.max(10, Math.min(40, (io.stderr.columns ?? 80) - id.length - 40));
      const filled = total ? Math.round((width * done) / total) : 0;
      io.stderr.write(`\r${id} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${done}/${total} units  ${status.state}\x1b[K`);
      drawn = true;
    },
    /** A line of its own above the bar (the bar is redrawn at the next update). */
    line(text: string) {
      io.stderr.write(`${drawn ? '\r\x1b[K' : ''}${text}\n`);
      drawn = false;
    },
    end() {
      if (drawn) io.stderr.write('\n');
      drawn = false;
    },
  };
}

class Commands {
  constructor(
    private readonly grid: Grid,
    private readonly values: Values,
    private readonly io: CliIo,
    private readonly json: boolean,
  ) {}

  private out(value: unknown, human: string) {
    print(this.io, this.json ? JSON.stringify(value) : human);
  }

  private note(line: string) {
    if (!this.json) this.io.stderr.write(line + '\n');
  }

  async submit(kind: string, args: string[]): Promise<number> {
    const v = this.values;
    const common = { replication: count(v, 'replication'), ...(v.name !== undefined && { name: v.name }) };
    const tol = tolerance(v);
    let job: Job;
    if (kind === 'matmul') {
      if (args.length !== 2) throw new UsageError('submit matmul takes two files: A.npy B.npy');
      let tile: [number, number] | undefined;
      if (v.tile !== undefined) {
        const m = /^(\d+)[x×](\d+)$/.exec(v.tile);
        if (!m) throw new UsageError(`--tile must be ROWSxCOLS, e.g. 64x64, got ${v.tile}`);
        tile = [Number(m[1]), Number(m[2])];
      }
      const [a, b] = args.map(readInput);
      job = await this.grid.matmul(a, b, { ...common, tile, tolerance: tol, ...(v['no-adaptive'] && { adaptive: false }) });
    } else if (kind === 'attention') {
      if (args.length !== 3) throw new UsageError('submit attention takes three files: Q.npy K.npy V.npy');
      const [q, k, vv] = args.map(readInput);
      job = await this.grid.attention(q, k, vv, { ...common, causal: v.causal ?? false, blockRows: count(v, 'block-rows'), tolerance: tol });
    } else if (kind === 'train') {
      job = await this.train(args, { ...common, ...(tol && { tolerance: tol }) });
    } else {
      const [modelPath, ...feeds] = args;
      if (!modelPath || feeds.length === 0) throw new UsageError('submit onnx takes the model and its inputs: MODEL.onnx NAME=X.npy… (or MODEL.onnx X.npy for a one-input model)');
      const model = readInput(modelPath);
      let inputs: Record<string, Uint8Array> | Uint8Array;
      if (feeds.length === 1 && !feeds[0].includes('=')) inputs = readInput(feeds[0]);
      else {
        inputs = {};
        for (const feed of feeds) {
          const at = feed.indexOf('=');
          if (at <= 0) throw new UsageError(`an onnx input is NAME=FILE.npy, got ${feed}`);
          inputs[feed.slice(0, at)] = readInput(feed.slice(at + 1));
        }
      }
      job = await this.grid.onnx(model, inputs, { ...common, itemsPerUnit: count(v, 'items-per-unit'), argmax: v.argmax, flopsPerItem: number(v, 'flops-per-item'), tolerance: tol });
    }
    const created = { id: job.id, kind: job.kind, workUnits: job.workUnits, ...(job.outputs && { outputs: job.outputs }) };
    if (v.out === undefined && !v.wait) {
      this.out(created, job.id);
      this.note(`submitted ${job.kind} job ${job.id} in ${job.workUnits} work units`);
      return EXIT.ok;
    }
    this.note(`submitted ${job.kind} job ${job.id} in ${job.workUnits} work units`);
    if (!this.json) print(this.io, job.id);
    const status = await this.waitFor(job);
    if (status.state === 'failed') return this.failed(status, created);
    if (v.out === undefined) this.note(statusLine(status));
    const files = v.out === undefined ? [] : await this.write(job, v.out, undefined);
    if (this.json) print(this.io, JSON.stringify({ ...created, status, files }));
    return EXIT.ok;
  }

  /** `submit train`: an MLP from X.npy Y.npy, or a transformer LM from --tokens. */
  private async train(args: string[], common: { replication?: number; name?: string; tolerance?: Tolerance }): Promise<Job> {
    const v = this.values;
    const lm = v.tokens !== undefined;
    const need = <T>(value: T | undefined, flag: string): T => {
      if (value === undefined) throw new UsageError(`submit train${lm ? ' --tokens' : ''} needs --${flag}`);
      return value;
    };
    const optimizer = v.optimizer ?? 'adamw';
    if (optimizer !== 'adamw' && optimizer !== 'sgd') throw new UsageError(`--optimizer is adamw or sgd, got ${optimizer}`);
    if (v.compress !== undefined && v.compress !== 'none' && v.compress !== 'int8') throw new UsageError(`--compress is none or int8, got ${v.compress}`);
    const lr = number(v, 'lr');
    if (v.optimizer !== undefined && lr === undefined) throw new UsageError('--optimizer needs --lr');
    const settings: TrainSettings = {
      ...common,
      rounds: need(count(v, 'rounds'), 'rounds'),
      localSteps: need(count(v, 'local-steps'), 'local-steps'),
      batchSize: need(count(v, 'batch-size'), 'batch-size'),
      ...(lr !== undefined && { innerOptimizer: { type: optimizer, lr } }),
      ...(v['units-per-round'] !== undefined && { unitsPerRound: count(v, 'units-per-round') }),
      ...(v.compress !== undefined && { compress: v.compress as 'none' | 'int8' }),
      ...(v.seed !== undefined && { seed: count(v, 'seed') }),
      ...(v.init !== undefined && { init: readInput(v.init) }),
    };
    if (lm) {
      if (args.length) throw new UsageError('submit train --tokens takes no other files (X.npy Y.npy are an MLP\'s)');
      const model = { vocab: need(count(v, 'vocab'), 'vocab'), context: need(count(v, 'context'), 'context'), layers: need(count(v, 'layers'), 'layers'), dModel: need(count(v, 'd-model'), 'd-model'), heads: need(count(v, 'heads'), 'heads') };
      return this.grid.trainLm(readInput(v.tokens!), { ...settings, model, ...(v.validation !== undefined && { validation: readInput(v.validation) }) });
    }
    const stray = TRAIN_LM_ONLY.find((o) => v[o as keyof Values] !== undefined);
    if (stray) throw new UsageError(`--${stray} is for a language model: give its tokens with --tokens TOKENS.npy`);
    if (args.length !== 2) throw new UsageError('submit train takes two files: X.npy (rows × features) Y.npy (class ids), or --tokens TOKENS.npy for a language model');
    const layersText = need(v.layers, 'layers');
    if (!/^\d+(,\d+)+$/.test(layersText)) throw new UsageError(`--layers is the widths from features to classes, e.g. 8,32,4; got ${layersText}`);
    const [x, y] = args.map(readInput);
    return this.grid.train(x, y, { ...settings, model: { type: 'mlp', layers: layersText.split(',').map(Number) } });
  }

  async status(args: string[]): Promise<number> {
    if (args.length > 1) throw new UsageError('status takes at most one job id');
    if (args.length === 1) {
      const status = await (await this.grid.job(args[0])).status();
      this.out(status, statusLine(status));
      return EXIT.ok;
    }
    const stats = await this.grid.stats();
    this.out(stats, statsText(stats));
    return EXIT.ok;
  }

  async jobs(args: string[]): Promise<number> {
    if (args.length) throw new UsageError('jobs takes no arguments');
    const jobs = await this.grid.jobs();
    this.out({ jobs }, jobs.length ? jobs.map(statusLine).join('\n') : '(no jobs)');
    return EXIT.ok;
  }

  async onJob(command: 'wait' | 'result' | 'cancel', args: string[]): Promise<number> {
    if (args.length !== 1) throw new UsageError(`${command} takes one job id`);
    if (command === 'result' && this.values.out === undefined) throw new UsageError('result needs -o PATH (- for stdout)');
    const job = await this.grid.job(args[0]);
    if (command === 'cancel') {
      const status = await job.cancel();
      this.out(status, statusLine(status));
      return EXIT.ok;
    }
    if (command === 'wait') {
      const status = await this.waitFor(job);
      if (status.state === 'failed') return this.failed(status);
      this.out(status, statusLine(status));
      return EXIT.ok;
    }
    const path = this.values.out!;
    if (this.values.model && this.values.output !== undefined) throw new UsageError('--model or --output, not both');
    if (this.values.wait) {
      const status = await this.waitFor(job);
      if (status.state === 'failed') return this.failed(status);
    }
    let files: object[];
    if (this.values.model) {
      const bytes = await job.model({ wait: false });
      if (path === '-') this.io.stdout.write(bytes);
      else {
        writeFileSync(path, bytes);
        this.note(`wrote ${path} (the trained model as ONNX, ${bytes.length} bytes)`);
      }
      files = [{ path, bytes: bytes.length, model: true }];
    } else files = await this.write(job, path, this.values.output);
    if (this.json && path !== '-') print(this.io, JSON.stringify({ id: job.id, files }));
    return EXIT.ok;
  }

  private failed(status: JobStatus, extra: object = {}): number {
    if (this.json) print(this.io, JSON.stringify({ ...extra, status }));
    return fail(this.io, this.json, EXIT.jobFailed, 'job_failed', `job ${status.id} failed: ${status.error}`);
  }

  private async waitFor(job: Job): Promise<JobStatus> {
    const timeout = number(this.values, 'timeout');
    const bar = progressBar(this.io, job.id, !this.json && Boolean(this.io.stderr.isTTY));
    let rounds = 0; // a train job's closed rounds already printed
    const onProgress = (s: JobStatus) => {
      if (!this.json) for (const r of s.perRound?.slice(rounds) ?? []) bar.line(roundLine(r, s.rounds));
      rounds = Math.max(rounds, s.perRound?.length ?? 0);
      bar.update(s);
    };
    try {
      return await job.wait({ timeout: timeout === undefined ? undefined : timeout * 1000, onProgress });
    } finally {
      bar.end();
    }
  }

  /** Writes the result (or its outputs) under `path`; what it wrote. */
  private async write(job: Job, path: string, output: string | undefined): Promise<{ path: string; shape: number[]; output?: string }[]> {
    const outputs = job.kind === 'onnx' && output === undefined ? (job.outputs ?? (await job.status()).outputs ?? []) : [];
    const wait = false;
    if (outputs.length > 1) {
      if (path === '-') throw new UsageError(`job ${job.id} has ${outputs.length} outputs (${outputs.join(', ')}): give -o a folder, or pick one with --output`);
      mkdirSync(path, { recursive: true });
      const files = [];
      for (const name of outputs) {
        const file = join(path, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy`);
        files.push(this.save(file, await job.npy({ wait, output: name }), name));
      }
      return files;
    }
    const name = output ?? (outputs.length === 1 ? outputs[0] : undefined);
    return [this.save(path, await job.npy({ wait, output: name }), name)];
  }

  private save(path: string, npy: Uint8Array, output: string | undefined) {
    const { shape } = parseNpy(npy);
    if (path === '-') this.io.stdout.write(npy);
    else {
      writeFileSync(path, npy);
      this.note(`wrote ${path} (${shapeText(shape)}${output ? `, output ${output}` : ''})`);
    }
    return { path, shape, ...(output !== undefined && { output }) };
  }
}

function statusLine(s: JobStatus): string {
  const parts = [s.id, s.kind, s.state, `${s.progress.done}/${s.progress.total} units`];
  if (s.result) parts.push(`result ${shapeText(s.result.shape)}`);
  if (s.outputs) parts.push(`outputs ${s.outputs.join(',')}`);
  if (s.rounds !== undefined) parts.push(`round ${s.round ?? 0}/${s.rounds}${s.perRound?.length ? ` loss ${s.perRound.at(-1)!.loss.toPrecision(4)}` : ''}`);
  if (s.name) parts.push(JSON.stringify(s.name));
  if (s.error) parts.push(`error: ${s.error}`);
  return parts.join('  ');
}

/** One closed round of a train job, as printed while waiting: `round 2/6  loss 1.8123  train loss 1.9034  2/2 units`. */
function roundLine(r: RoundStats, rounds: number | undefined): string {
  const dropped = r.dropped ? ` (${r.dropped} dropped)` : '';
  return `round ${r.round + 1}/${rounds ?? '?'}  loss ${r.loss.toPrecision(5)}  train loss ${r.trainLoss.toPrecision(5)}  ${r.units}/${r.planned} units${dropped}`;
}

function statsText(s: GridStats): string {
  const r = s.results;
  return [
    `volunteers  ${s.volunteers.online} online of ${s.volunteers.total}`,
    `jobs        ${s.jobs.running} running, ${s.jobs.queued} queued, ${s.jobs.done} done, ${s.jobs.failed} failed`,
    `results     ${r.agreed} agreed, ${r.disagreed} disagreed, ${r.invalid} invalid, ${r.pending} pending`,
  ].join('\n');
}

function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}
