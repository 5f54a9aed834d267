// A classroom: the teacher creates a room, a student joins by typing the code, the board shows the
// laptop live, the teacher pauses and resumes the room and starts a demo job the student computes.
import { expect, test } from './fixtures';
import { startGrid } from './grid';

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

    // The board, on the teacher's machine (it holds the teacher key).
    await teacher.getByTestId('open-board').click();
    await expect(teacher.getByTestId('board-title')).toHaveText('Physics 2B');
    await expect(teacher.getByTestId('live')).toHaveText('● live');

    // A student types the code, picks a name, starts.
    const student = await (await browser.newContext()).newPage();
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
    await student.waitForTimeout(1000);
    await expect(student.getByTestId('units-done')).toHaveText('0');

    // Resume: the demo job's units are computed by the student, credited to the room.
    await teacher.getByTestId('room-resume').click();
    await expect(student.getByTestId('units-done')).toHaveText('4', { timeout: 60_000 });
    await expect(row.getByTestId('board-units')).toHaveText('4', { timeout: 10_000 });
    await expect(row.getByTestId('board-state')).toHaveText('computing');
    await expect(teacher.getByTestId('board-credit')).toHaveAttribute('data-credit', String(4 * 2 * 64 * 64 * 128));
    await teacher.screenshot({ path: `${SHOTS}/board.png`, fullPage: true });
    await student.screenshot({ path: `${SHOTS}/room-student.png`, fullPage: true });
  } finally {
    await grid.stop();
  }
});
