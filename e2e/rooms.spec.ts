// A classroom: the teacher creates a room, a student joins by typing the code, the board shows the
// laptop live, the teacher pauses and resumes the room and starts a demo job the student computes.
import { expect, test } from './fixtures';
import { waitFor } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { recordWire, startGrid } from './grid';

const SHOTS = 'test-results/screenshots';

test('teacher creates a room, a student joins by code, the board follows live with pause, resume and a demo job', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const teacherCtx = await browser.newContext();
    const teacher = await teacherCtx.newPage();
    await teacher.goto(grid.base + '/teacher');
    await teacher.getByLabel('Room name').fill('Physics 2B');
    await teacher.getByLabel('Room name').press('Enter'); // keyboard submits the form
    const code = (await teacher.getByTestId('created-code').textContent())!.trim();
    expect(code).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
    await expect(teacher.getByTestId('join-link')).toHaveAttribute('href', `/room/${code}`);
    await expect(teacher.getByRole('img', { name: /QR code for .*\/room\// })).toBeVisible();
    await teacher.screenshot({ path: `${SHOTS}/teacher.png`, fullPage: true });
    // The link that gives another machine the teacher's controls.
    const keyLink = (await teacher.locator('code').filter({ hasText: '#key=' }).textContent())!.trim();
    expect(keyLink).toMatch(new RegExp(`^${grid.base}/board/${code}#key=tk_`));

    // The board, on the teacher's machine (it holds the teacher key).
    await teacher.getByTestId('open-board').click();
    await expect(teacher.getByTestId('board-title')).toHaveText('Physics 2B');
    await expect(teacher.getByTestId('live')).toHaveText('● live');

    // A student types the code, picks a name, starts. (The room page computes on the backend it
    // picks: the CPU here.)
    const student = await (await browser.newContext()).newPage();
    const wire = recordWire(student);
    await student.goto(grid.base + '/room');
    await student.getByLabel('Room code').fill(code.toLowerCase());
    await student.getByLabel('Room code').press('Enter');
    await expect(student.getByTestId('room-title')).toHaveText('Physics 2B');
    await student.getByLabel('Your name on the board').fill('Ada');
    await student.screenshot({ path: `${SHOTS}/room-join.png`, fullPage: true });
    await student.getByRole('button', { name: 'Start computing' }).click();
    await expect(student.getByTestId('room-name')).toHaveText('Physics 2B', { timeout: 60_000 });

    // The board shows the laptop within a few seconds, starting until its first unit.
    const row = teacher.getByTestId('board-row').filter({ hasText: 'Ada' });
    await expect(row).toBeVisible({ timeout: 5_000 });
    await expect(row).toContainText('swiftshader');
    await expect(row.getByTestId('board-state')).toHaveText('starting');

    // Pause the room: the student's page stops taking work.
    await teacher.getByTestId('room-pause').click();
    await expect(student.getByTestId('pause-reasons')).toContainText('the teacher paused the room');
    await expect(teacher.getByTestId('board-paused')).toBeVisible();
    await expect(row).toContainText('paused');
    await teacher.getByTestId('demo-size').selectOption('small');
    await teacher.getByTestId('demo').click();
    await expect(teacher.getByTestId('teacher-message')).toContainText('4 work units');
    // The demo job's units were there to be handed out: a worker outside the room that connects
    // now takes all four (and holds them), while the paused student got none.
    const outsider = new SimWorker({ url: grid.base, name: 'outsider', slots: 4, compute: () => new Promise<never>(() => {}) });
    try {
      await outsider.connect();
      await waitFor(() => outsider.received('assign').length === 4, 20_000, 'the outsider to take the demo units');
      expect(wire.received.filter((m) => m.type === 'assign')).toHaveLength(0);
      await expect(student.getByTestId('units-done')).toHaveText('0');
    } finally {
      outsider.kill(); // its units go back to the queue
    }

    // Resume: the demo job's units are computed by the student, credited to the room.
    await teacher.getByTestId('room-resume').click();
    await expect(student.getByTestId('units-done')).toHaveText('4', { timeout: 60_000 });
    await expect(row.getByTestId('board-units')).toHaveText('4', { timeout: 10_000 });
    await expect(row.getByTestId('board-state')).toHaveText('computing');
    await expect(teacher.getByTestId('board-credit')).toHaveAttribute('data-credit', String(4 * 2 * 64 * 64 * 128));
    await teacher.screenshot({ path: `${SHOTS}/board.png`, fullPage: true });
    await student.screenshot({ path: `${SHOTS}/room-student.png`, fullPage: true });

    // Another machine: the #key= link opened afresh gives the board its controls.
    const laptop = await (await browser.newContext()).newPage();
    await laptop.goto(keyLink);
    await expect(laptop.getByTestId('teacher-controls')).toBeVisible();
    expect(new URL(laptop.url()).hash).toBe('');
    // The projector's machine: the board alone has no controls; the #key= link pasted into that
    // tab (a change of fragment, not a reload) gives them, the key leaves the address bar, and
    // its Pause reaches the student.
    const projector = await (await browser.newContext()).newPage();
    await projector.goto(`${grid.base}/board/${code}`);
    await expect(projector.getByTestId('board-title')).toHaveText('Physics 2B');
    await expect(projector.getByTestId('board-row').filter({ hasText: 'Ada' })).toBeVisible();
    await expect(projector.getByTestId('teacher-controls')).toHaveCount(0);
    await projector.goto(keyLink);
    await expect(projector.getByTestId('teacher-controls')).toBeVisible();
    expect(new URL(projector.url()).hash).toBe('');
    await projector.getByTestId('room-pause').click();
    await expect(student.getByTestId('pause-reasons')).toContainText('the teacher paused the room');
    await expect(projector.getByTestId('board-paused')).toBeVisible();
    await projector.getByTestId('room-resume').click();
    await expect(student.getByTestId('pause-reasons')).toHaveCount(0);
  } finally {
    await grid.stop();
  }
});
