import { describe, expect, test } from 'vitest';
import { Gate } from './gate';

/** A task that records when it starts and ends, and finishes when told. */
function task(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  return {
    run: async () => {
      log.push(`${name}+`);
      await done;
      log.push(`${name}-`);
      return name;
    },
    finish,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('Gate: units and background steps take turns on the compute worker', () => {
  test('one at a time: a step never runs while a unit computes', async () => {
    const gate = new Gate();
    const log: string[] = [];
    const u = task(log, 'u1');
    const s = task(log, 's1');
    const unit = gate.unit(u.run);
    const step = gate.step(s.run);
    await tick();
    expect(log).toEqual(['u1+']);
    u.finish();
    await tick();
    expect(log).toEqual(['u1+', 'u1-', 's1+']);
    s.finish();
    expect(await Promise.all([unit, step])).toEqual(['u1', 's1']);
    expect(gate.state).toEqual({ held: null, units: 0, steps: 0 });
  });

  test('a unit waits only for the step in progress, not for the steps queued behind it', async () => {
    const gate = new Gate();
    const log: string[] = [];
    const s1 = task(log, 's1');
    const s2 = task(log, 's2');
    const u = task(log, 'u1');
    void gate.step(s1.run);
    void gate.step(s2.run);
    void gate.unit(u.run);
    await tick();
    s1.finish();
    await tick();
    expect(log).toEqual(['s1+', 's1-', 'u1+']);
    u.finish();
    await tick();
    expect(log.at(-1)).toBe('s2+'); // and the step goes on once the unit is done
    s2.finish();
  });

  test('a busy stream of units still lets one step through after each unit', async () => {
    const gate = new Gate();
    const log: string[] = [];
    const units = [task(log, 'u1'), task(log, 'u2'), task(log, 'u3')];
    const steps = [task(log, 's1'), task(log, 's2')];
    void gate.unit(units[0].run);
    void gate.unit(units[1].run);
    void gate.step(steps[0].run);
    void gate.step(steps[1].run);
    void gate.unit(units[2].run);
    for (const t of [units[0], steps[0], units[1], steps[1], units[2]]) {
      await tick();
      t.finish();
    }
    await tick();
    expect(log.filter((l) => l.endsWith('+'))).toEqual(['u1+', 's1+', 'u2+', 's2+', 'u3+']);
  });

  test('a failing task frees the gate', async () => {
    const gate = new Gate();
    await expect(gate.step(async () => Promise.reject(new Error('no GPU')))).rejects.toThrow('no GPU');
    expect(await gate.unit(async () => 7)).toBe(7);
    expect(gate.state.held).toBeNull();
  });
});
