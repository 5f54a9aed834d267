// Turns on the compute worker between work units and background steps (timed measurements, the
// autotuner's timed candidates): one holds it at a time, so a measurement never times a backend
// while a unit computes, and a unit never waits for more than the one step in progress. A waiting
// unit goes first, except right after another unit when a step is waiting: then the step has its
// turn, so measuring makes progress between the units of a busy stream. Loading a runtime or
// compiling pipelines needs no turn: those run alongside whatever holds the gate.

type Kind = 'unit' | 'step';

export class Gate {
  private held: Kind | null = null;
  private last: Kind | null = null;
  private readonly waiting: { kind: Kind; go: () => void }[] = [];

  /** Runs a work unit at the first turn a unit may have. */
  unit<T>(fn: () => Promise<T>): Promise<T> {
    return this.turn('unit', fn);
  }

  /** Runs a background step between units (or at once, when none computes or waits). */
  step<T>(fn: () => Promise<T>): Promise<T> {
    return this.turn('step', fn);
  }

  /** What holds the gate now (null: nothing), and how many wait, by kind (for tests and status). */
  get state(): { held: Kind | null; units: number; steps: number } {
    return { held: this.held, units: this.waiting.filter((w) => w.kind === 'unit').length, steps: this.waiting.filter((w) => w.kind === 'step').length };
  }

  private async turn<T>(kind: Kind, fn: () => Promise<T>): Promise<T> {
    if (this.held !== null) await new Promise<void>((go) => this.waiting.push({ kind, go }));
    else this.held = kind;
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private release() {
    this.last = this.held;
    const stepTurn = this.last === 'unit' ? this.waiting.findIndex((w) => w.kind === 'step') : -1;
    const unitTurn = this.waiting.findIndex((w) => w.kind === 'unit');
    const i = stepTurn >= 0 ? stepTurn : unitTurn >= 0 ? unitTurn : this.waiting.length ? 0 : -1;
    if (i < 0) {
      this.held = null;
      return;
    }
    const [next] = this.waiting.splice(i, 1);
    this.held = next.kind;
    next.go();
  }
}
